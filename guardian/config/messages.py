"""Pydantic errors as guardian's one-line messages: ``breadcrumb: what is wrong (got …)``.

Input: one pydantic ``ErrorDetails`` and the raw document it came from (to name list items
by their ``name``). Output: a line such as ``slos[1] 'dns-errors': objective: must be > 0
and < 100 (got 101)``; every value shown is cut (``shown``), so a huge input never makes a
huge message. Called by ``guardian.config.load`` (config files) and
``guardian.playbooks.load`` (playbooks and their step parameters).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic_core import ErrorDetails

from guardian.config.read import shown


def format_error(err: ErrorDetails, raw: Any) -> str:
    """One pydantic error as ``breadcrumb: message``."""
    crumbs = _breadcrumb(err["loc"], raw)
    message = _message(err)
    return f"{crumbs}: {message}" if crumbs else message


def _breadcrumb(loc: tuple[int | str, ...], raw: Any) -> str:
    parts: list[str] = []
    node = raw
    for item in loc:
        if isinstance(item, int) and parts:
            parts[-1] += f"[{item}]"
            node = node[item] if isinstance(node, list) and item < len(node) else None
            if parts[-1].startswith("slos[") and isinstance(node, dict):
                name = node.get("name")
                if isinstance(name, str):
                    parts[-1] += f" {shown(name, 70)}"
            continue
        if item in ("function-after[_duration(), str]",) or not isinstance(item, str | int):
            continue
        text = str(item)
        parts.append(text if len(text) <= 40 else text[:39] + "…")
        node = node.get(item) if isinstance(node, dict) else None
    return ": ".join(parts)


_EXPECT = {
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "list_type": "must be a list",
}


def _message(err: ErrorDetails) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    got = shown(err.get("input"))
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown key; remove it or check its spelling"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind == "literal_error":
        expected = ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
        return f"must be one of {expected} (got {got})"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sign = {
            "greater_than_equal": ">=",
            "greater_than": ">",
            "less_than_equal": "<=",
            "less_than": "<",
        }[kind]
        bound = next(iter(ctx.values()), "")
        return f"must be {sign} {bound} (got {got})"
    if kind == "too_short":
        return f"must not be empty (got {got})"
    if kind in _EXPECT:
        return f"{_EXPECT[kind]} (got {got})"
    return f"{err['msg']} (got {got})"
