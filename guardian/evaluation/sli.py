"""SLI → PromQL: the error and total rates of one SLO over one window.

Input: an ``SLI`` from the model and a window in seconds. Output: PromQL strings, each
evaluating to a single series (or nothing when the data is missing). Called by
``guardian.evaluation.queries`` (batched evaluation) and ``guardian.evaluation.rules``
(recording rules), so both compute exactly the same numbers.
"""

from __future__ import annotations

from guardian.config.model import (
    SLI,
    ApiserverLatencySLI,
    CorednsErrorsSLI,
    LatencySLI,
    RatioSLI,
)
from guardian.durations import format_duration

READ_VERBS = "LIST|GET"
WRITE_VERBS = "POST|PUT|PATCH|DELETE"
STREAMING_SUBRESOURCES = "proxy|attach|log|exec|portforward"


def errors_rate(sli: SLI, window: int, sparse: bool = False) -> str:
    """PromQL for bad events per second over ``window``; ``0`` when none were bad.

    With ``sparse``, an SLI whose error series may simply not exist yet (``ratio``,
    ``coredns_errors``: see ``absent_errors_mean_zero``) returns nothing instead of ``0``,
    which saves Prometheus work when thousands of SLOs share one query.
    """
    w = format_duration(window)
    if isinstance(sli, ApiserverLatencySLI):
        return _apiserver_errors(sli, w)
    if isinstance(sli, LatencySLI):
        total = f"sum(rate({sli.metric}_count{{{sli.selector}}}[{w}]))"
        good = _sum_rate(f"{sli.metric}_bucket", _join(sli.selector, le_matcher(sli.le)), w)
        return f"({total} - ({good} or vector(0)))"
    if isinstance(sli, CorednsErrorsSLI):
        rcodes = "|".join(sli.rcodes)
        errors = _sum_rate(sli.metric, _join(sli.selector, f'rcode=~"{rcodes}"'), w)
    else:
        errors = _single(_window(sli.errors, w))
    return errors if sparse else f"({errors} or vector(0))"


def absent_errors_mean_zero(sli: SLI) -> bool:
    """True when a missing error series means "no errors" rather than "no data".

    Error counters labelled by code or rcode often appear only with the first error. The
    latency SLIs derive errors from the total, so missing errors there mean missing data.
    """
    return isinstance(sli, CorednsErrorsSLI | RatioSLI)


def total_rate(sli: SLI, window: int) -> str:
    """PromQL for all events per second over ``window``; nothing when there is no data."""
    w = format_duration(window)
    if isinstance(sli, ApiserverLatencySLI):
        return _sum_rate(sli.requests_metric, _apiserver_base(sli), w)
    if isinstance(sli, CorednsErrorsSLI):
        return _sum_rate(sli.metric, sli.selector, w)
    if isinstance(sli, LatencySLI):
        return _sum_rate(f"{sli.metric}_count", sli.selector, w)
    return _single(_window(sli.total, w))


def freshness_selector(sli: SLI) -> str | None:
    """A series selector whose newest sample tells how fresh the SLI's data is.

    ``None`` for free-form ratios, whose staleness shows only as missing data.
    """
    if isinstance(sli, ApiserverLatencySLI):
        return f"{sli.requests_metric}{{{_apiserver_base(sli)}}}"
    if isinstance(sli, CorednsErrorsSLI):
        return f"{sli.metric}{{{sli.selector}}}"
    if isinstance(sli, LatencySLI):
        return f"{sli.metric}_count{{{sli.selector}}}"
    return None


def _apiserver_verbs(sli: ApiserverLatencySLI) -> str:
    return {"read": READ_VERBS, "write": WRITE_VERBS}.get(sli.verbs, f"{READ_VERBS}|{WRITE_VERBS}")


def _apiserver_base(sli: ApiserverLatencySLI) -> str:
    return _join(
        sli.selector,
        f'verb=~"{_apiserver_verbs(sli)}"',
        f'subresource!~"{STREAMING_SUBRESOURCES}"',
    )


def _apiserver_errors(sli: ApiserverLatencySLI, w: str) -> str:
    base = _apiserver_base(sli)
    count = _sum_rate(f"{sli.metric}_count", base, w)
    good = " + ".join(
        f"({_sum_rate(f'{sli.metric}_bucket', _join(base, extra), w)} or vector(0))"
        for extra in _good_buckets(sli)
    )
    codes = "5..|429" if sli.rejected_are_bad else "5.."
    answered = _sum_rate(sli.requests_metric, _join(base, f'code=~"{codes}"'), w)
    return f"(({count} - ({good})) + ({answered} or vector(0)))"


def _good_buckets(sli: ApiserverLatencySLI) -> list[str]:
    reads = [
        f'verb=~"{READ_VERBS}",scope=~"resource|",{le_matcher(sli.resource_threshold)}',
        f'verb=~"{READ_VERBS}",scope="namespace",{le_matcher(sli.namespace_threshold)}',
        f'verb=~"{READ_VERBS}",scope="cluster",{le_matcher(sli.cluster_threshold)}',
    ]
    writes = [f'verb=~"{WRITE_VERBS}",{le_matcher(sli.write_threshold)}']
    if sli.verbs == "read":
        return reads
    if sli.verbs == "write":
        return writes
    return reads + writes


def le_matcher(le: str) -> str:
    """Match a bucket as Prometheus 2 (``le="1"``) and 3 (``le="1.0"``) store it."""
    value = float(le)
    if value.is_integer():
        return f'le=~"{int(value)}(\\\\.0)?"'
    return f'le="{le}"'


def _sum_rate(metric: str, selector: str, w: str) -> str:
    return f"sum(rate({metric}{{{selector}}}[{w}]))"


def _join(*matchers: str) -> str:
    return ",".join(m for m in matchers if m)


def _single(expr: str) -> str:
    """``expr`` as one series: wrapped in ``sum()`` unless it already is a plain ``sum(...)``."""
    text = expr.strip()
    if text.startswith("sum(") and _closing(text, 3) == len(text) - 1:
        return text
    return f"sum({text})"


def _closing(text: str, opening: int) -> int:
    depth = 0
    quote = ""
    for index in range(opening, len(text)):
        char = text[index]
        if quote:
            quote = "" if char == quote and text[index - 1] != "\\" else quote
        elif char in "\"'`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
    return -1


def _window(template: str, w: str) -> str:
    return template.replace("{{ window }}", w).replace("{{window}}", w)
