"""Prometheus durations: parse ``1h30m``/``5m``/``30s`` into seconds and write them back.

Input: a duration's text (``parse_duration``) or seconds (``format_duration``). Output: the
other. Parsed by ``guardian.config`` (spec, slo_spec, checks, build, load),
``guardian.playbooks.load`` and ``guardian.app.args``; written by ``guardian.evaluation``
(queries, sli, rules, results, instant), ``guardian.config.build``,
``guardian.approval.blocks``, ``guardian.app`` (report, plot, daemon.metrics) and
``bench/evaluate.py``. Durations are whole seconds here: guardian never
needs finer windows, and PromQL rule names must stay stable. None is longer than
``MAX_SECONDS``, so every one fits a ``timedelta`` and a date it is added to.
"""

from __future__ import annotations

import re

_UNITS: dict[str, int] = {
    "y": 365 * 86400,
    "w": 7 * 86400,
    "d": 86400,
    "h": 3600,
    "m": 60,
    "s": 1,
}
_PART = re.compile(r"(\d+)(y|w|d|h|ms|m|s)")

MAX_SECONDS = 10 * _UNITS["y"]
"""The longest duration guardian reads: 10y."""


def parse_duration(text: str, at_most: int = MAX_SECONDS) -> int:
    """Return the number of seconds in a Prometheus duration such as ``1h30m``.

    Raises ``ValueError`` with a sentence fit for an error message otherwise, also when the
    duration is longer than ``at_most`` seconds.
    """
    text = text.strip()
    shown = repr(text) if len(text) <= 40 else repr(text[:35]) + "…"
    pos = 0
    total = 0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        if match.group(2) == "ms":
            raise ValueError(f"must be whole seconds (got {shown})")
        digits = match.group(1)
        count = int(digits) if len(digits) <= 15 else MAX_SECONDS + 1
        total += count * _UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"must be a duration like 30s, 5m, 1h or 30d (got {shown})")
    if total <= 0:
        raise ValueError(f"must be longer than 0s (got {shown})")
    if total > min(at_most, MAX_SECONDS):
        limit = format_duration(min(at_most, MAX_SECONDS))
        raise ValueError(f"must be at most {limit} (got {shown})")
    return total


def format_duration(seconds: int) -> str:
    """Write seconds as the shortest Prometheus duration: 3600 → ``1h``, 5400 → ``1h30m``."""
    if seconds <= 0:
        raise ValueError(f"duration must be positive (got {seconds})")
    parts: list[str] = []
    rest = seconds
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if rest >= size:
            count, rest = divmod(rest, size)
            parts.append(f"{count}{unit}")
    return "".join(parts)
