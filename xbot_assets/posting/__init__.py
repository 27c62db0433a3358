"""Posting: the only code that makes a post happen (at most once, never lost).

Public entry points (import them from their modules; this package imports nothing heavy):

- :func:`xbot_assets.posting.factory.make_poster` — the poster ``settings.resolved_poster`` names
  (``sandbox``, ``api``, ``browser``), all behind :class:`xbot_assets.posting.base.Poster`;
- :func:`xbot_assets.posting.factory.post_due` — reconcile, then post every due post the gates
  allow (what the orchestration's posting job calls);
- :func:`xbot_assets.posting.factory.reconcile` — settle rows left in ``posting``
  (``xbot reconcile``);
- :class:`~xbot_assets.posting.ledger.PostingLedger`,
  :class:`~xbot_assets.posting.service.PostingService`,
  :class:`~xbot_assets.posting.reconciler.Reconciler` — the pieces, for tests and tools.

The ``browser`` poster is opt-in only: X's automation rules forbid scripting the website.
"""
