"""Checks of free text typed on the command line, run before anything touches a store.

Python decodes ``argv`` with ``surrogateescape``: a byte that is not UTF-8 (``$'\\xff'``) arrives
as a lone surrogate that Postgres, JSON and the terminal all refuse later, with errors that name
the wrong cause (the brake said the store "did not answer", issue 17 item 11). A NUL is refused by
Postgres text columns. So every free-text argument is checked here first and the error says
exactly what is wrong and where.
"""

from __future__ import annotations

import unicodedata

_SURROGATES = range(0xD800, 0xE000)


class TextInputError(ValueError):
    """A free-text argument that cannot be stored or shown; the message says what to change."""


def check_text(value: str, *, name: str, max_chars: int = 500, allow_newlines: bool = False) -> str:
    """Return ``value`` if it is storable text, else raise :class:`TextInputError`.

    Args:
        value: the argument as Python received it.
        name: how the user wrote the argument (``--reason``, ``TEXT``), quoted in the error.
        max_chars: the longest text accepted.
        allow_newlines: whether line breaks (and tabs) belong in this text (a post) or not.
    """
    for index, char in enumerate(value):
        code = ord(char)
        if code in _SURROGATES:
            if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the undecodable byte itself
                what = f"the byte 0x{code - 0xDC00:02x}, which is not UTF-8,"
            else:
                what = f"a lone surrogate U+{code:04X}"
            raise TextInputError(
                f"{name} has {what} at character {index + 1}: type it as UTF-8 text "
                "(check the terminal's encoding, e.g. LANG=C.UTF-8)"
            )
        if char in "\n\t\r" and allow_newlines:
            continue
        if unicodedata.category(char) == "Cc":
            raise TextInputError(
                f"{name} has the control character U+{code:04X} at character {index + 1}: "
                "remove it" + ("" if allow_newlines else " (write it on one line)")
            )
    if len(value) > max_chars:
        raise TextInputError(
            f"{name} is {len(value)} characters long: keep it to {max_chars} at most"
        )
    return value
