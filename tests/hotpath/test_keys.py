"""Every Redis key goes through the key helper; no KEYS command anywhere in xbot_assets/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from xbot_assets.config import load_settings
from xbot_assets.store.hot.keys import KeyError_, KeySpace, scan_delete

PACKAGE = Path(__file__).resolve().parents[2] / "xbot_assets"

# redis-py methods whose first argument is a key (or a stream name).
KEY_COMMANDS = {
    "get",
    "set",
    "setnx",
    "setex",
    "psetex",
    "getset",
    "getdel",
    "getex",
    "mget",
    "mset",
    "incr",
    "incrby",
    "incrbyfloat",
    "decr",
    "decrby",
    "delete",
    "unlink",
    "exists",
    "expire",
    "pexpire",
    "expireat",
    "ttl",
    "pttl",
    "persist",
    "type",
    "rename",
    "hget",
    "hset",
    "hgetall",
    "hincrby",
    "hdel",
    "hmget",
    "hexists",
    "hkeys",
    "hvals",
    "hlen",
    "lpush",
    "rpush",
    "lpop",
    "rpop",
    "lrange",
    "llen",
    "ltrim",
    "sadd",
    "srem",
    "smembers",
    "sismember",
    "scard",
    "zadd",
    "zrem",
    "zrange",
    "zrangebyscore",
    "zcard",
    "zscore",
    "zincrby",
    "zremrangebyscore",
    "xadd",
    "xack",
    "xdel",
    "xlen",
    "xrange",
    "xrevrange",
    "xtrim",
    "xpending",
    "xpending_range",
    "xclaim",
    "xautoclaim",
    "xgroup_create",
    "xgroup_destroy",
    "xinfo_groups",
    "xinfo_stream",
    "xreadgroup",
    "xread",
    "publish",
    "pfadd",
    "pfcount",
    "setbit",
    "getbit",
    "bitcount",
}


# Names shared with dicts and other objects: only checked on a receiver that looks like a client.
AMBIGUOUS = {"get", "set", "delete", "exists", "type", "publish", "rename", "persist", "mget"}
CLIENT_NAME = re.compile(r"redis|client|pipe|^r$|^hot$", re.I)


def _receiver_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _redis_modules() -> list[Path]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if re.search(r"^\s*(import redis|from redis)", text, re.M):
            out.append(path)
    return out


def _is_literal_key(node: ast.AST) -> bool:
    """A key built without the helper: a string literal, an f-string, or string arithmetic."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        return _is_literal_key(node.left) or _is_literal_key(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "format" and _is_literal_key(node.func.value)
    if isinstance(node, ast.Dict):  # xreadgroup/xread streams={key: id}
        return any(k is not None and _is_literal_key(k) for k in node.keys)
    if isinstance(node, ast.List | ast.Tuple):
        return any(_is_literal_key(e) for e in node.elts)
    return False


def find_bypasses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    problems = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        method = node.func.attr
        receiver = _receiver_name(node.func.value) or ""
        looks_like_client = bool(CLIENT_NAME.search(receiver))
        if method in KEY_COMMANDS and (method not in AMBIGUOUS or looks_like_client):
            args = list(node.args)
            if method in ("xreadgroup",) and len(args) >= 3:
                args = [args[2]]
            first = args[0] if args else None
            for kw in node.keywords:
                if kw.arg in ("name", "key", "keys", "streams"):
                    first = kw.value
            if first is not None and _is_literal_key(first):
                problems.append(f"{path.name}:{node.lineno}: {ast.unparse(node)[:80]}")
        if method == "keys" and looks_like_client:
            problems.append(f"{path.name}:{node.lineno}: KEYS command via {receiver}.keys()")
        if method in ("execute_command", "register_script", "eval", "evalsha"):
            pattern = re.compile(r"^\s*keys\s*$|redis\.call\(\s*['\"]keys['\"]", re.I)
            for arg in node.args:
                text = arg.value if isinstance(arg, ast.Constant) else None
                if isinstance(text, str) and pattern.search(text):
                    problems.append(f"{path.name}:{node.lineno}: KEYS in a command or script")
    return problems


def test_the_scanner_catches_bypasses(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import redis\n"
        "r = redis.Redis()\n"
        "r.get('dedup:abc')\n"
        "r.incr(f'rl:{x}')\n"
        "r.xadd('q:' + name, {})\n"
        "r.xreadgroup('g', 'c', {'stream': '>'})\n"
        "r.keys('*')\n"
        "r.execute_command('KEYS')\n"
        "r.get(keys.key('ok'))\n",
        encoding="utf-8",
    )
    problems = find_bypasses(bad)
    assert len(problems) == 6, problems


def test_no_redis_call_in_xbot_assets_bypasses_the_key_helper():
    modules = _redis_modules()
    assert any(p.name == "streams.py" for p in modules)  # the scan sees the hot path
    problems = [p for path in modules for p in find_bypasses(path)]
    assert problems == [], "Redis keys must be built with KeySpace.key(): " + "; ".join(problems)


def test_no_keys_command_in_lua_or_code():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"redis\.call\(\s*['\"]KEYS['\"]", text, re.I), path
        assert not re.search(r"execute_command\(\s*['\"]KEYS['\"]", text, re.I), path


def test_keyspace_applies_the_environment_prefix():
    assert KeySpace.from_settings(load_settings(env_file=None, app_env="local")).key("a") == (
        "local:a"
    )
    staging = load_settings(env_file=None, app_env="staging", database_url="postgresql://u@h/db")
    assert KeySpace.from_settings(staging).key("dedup", "ab12") == "stg:dedup:ab12"
    assert KeySpace("prod:").key("q", "scoring", 3) == "prod:q:scoring:3"


@pytest.mark.parametrize("part", ["", "a*", "b?", "c[1]", "d e", "x\ny"])
def test_keyspace_refuses_parts_that_could_address_other_keys(part):
    with pytest.raises(KeyError_):
        KeySpace("local:").key("dedup", part)


def test_keyspace_refuses_a_prefix_without_colon():
    with pytest.raises(KeyError_, match="end with ':'"):
        KeySpace("prod")


def test_scan_delete_only_touches_its_prefix(redis_client, keys):
    other = KeySpace(keys.prefix.replace("test:", "test-other:"))
    redis_client.set(keys.key("a"), 1)
    redis_client.set(keys.key("b", "c"), 1)
    redis_client.set(other.key("a"), 1)
    try:
        assert scan_delete(redis_client, keys) == 2
        assert redis_client.exists(other.key("a")) == 1
    finally:
        scan_delete(redis_client, other)
