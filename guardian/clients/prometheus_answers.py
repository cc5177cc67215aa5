"""Prometheus' JSON answers: the bytes of an answer in, checked samples (or one-line errors) out.

Input: the body of an HTTP 200 answer from ``/api/v1/query`` or ``/api/v1/query_range`` (and
its Content-Type), or the body of an error answer. Output: the answer's ``data`` object, then
``InstantSample`` / ``RangeSeries`` lists; or a ``BadAnswer`` naming, on one line, what is
wrong: not JSON, no ``data``, ``status: error``, a matrix for a vector, a value that is not a
number. Called by ``guardian.clients.prometheus``, which reads the answers over HTTP and turns
a ``BadAnswer`` into a ``PrometheusUnavailable``. Every text taken from Prometheus reaches a
message on one line with control characters escaped (``\\x1b``). Values are passed on as read,
NaN and infinities included: the pipeline judges them.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

ResultType = Literal["vector", "matrix"]


@dataclass(frozen=True)
class InstantSample:
    """One series of an instant query."""

    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class RangeSeries:
    """One series of a range query: ``(unix_seconds, value)`` points."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


class BadAnswer(Exception):
    """Prometheus answered, but not with what was asked for; never retried."""


def answer_data(body: bytes, content_type: str) -> dict[str, Any]:
    """The ``data`` object of a successful (HTTP 200) answer; raises for anything else."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        kind = content_type.split(";", maxsplit=1)[0]
        raise BadAnswer(f"not JSON (Content-Type: {printable(kind[:100])})") from None
    if not isinstance(doc, dict):
        raise BadAnswer("not a JSON object")
    if doc.get("status") != "success":
        if doc.get("status") == "error":
            raise BadAnswer(f"status error: {one_line(doc.get('error'))}")
        raise BadAnswer(f'status is {_json(doc.get("status"))}, not "success"')
    data = doc.get("data")
    if not isinstance(data, dict) or "result" not in data:
        raise BadAnswer("no data.result")
    return data


def instant_samples(data: dict[str, Any]) -> list[InstantSample]:
    """The series of an instant query's ``data`` (a vector, or a scalar as one series)."""
    kind, result = _result(data, "vector")
    if kind == "scalar":
        return [InstantSample({}, _point(result, "data.result")[1])]
    return [
        InstantSample(
            _labels(item, f"data.result[{i}]"),
            _point(_field(item, "value", f"data.result[{i}]"), f"data.result[{i}].value")[1],
        )
        for i, item in enumerate(result)
    ]


def range_series(data: dict[str, Any]) -> list[RangeSeries]:
    """The series of a range query's ``data`` (a matrix)."""
    _, result = _result(data, "matrix")
    series: list[RangeSeries] = []
    for i, item in enumerate(result):
        where = f"data.result[{i}]"
        values = _field(item, "values", where)
        if not isinstance(values, list):
            raise BadAnswer(f"{where}.values is not a list of [time, value]")
        points = [_point(v, f"{where}.values[{j}]") for j, v in enumerate(values)]
        series.append(RangeSeries(_labels(item, where), points))
    return series


def error_text(body: bytes) -> str:
    """The error an HTTP error answer carries (its ``error`` field, or its text), one line."""
    text = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
        text = str(parsed.get("error", "")) if isinstance(parsed, dict) else text
    except (ValueError, RecursionError):
        pass
    return one_line(text)


def _result(data: dict[str, Any], wanted: ResultType) -> tuple[str, Any]:
    kind = data.get("resultType")
    allowed = ("vector", "scalar") if wanted == "vector" else ("matrix",)
    if kind not in allowed:
        raise BadAnswer(f"data.resultType is {_json(kind)}, not {wanted}")
    result = data["result"]
    if kind != "scalar" and not isinstance(result, list):
        raise BadAnswer("data.result is not a list")
    return str(kind), result


def _field(item: Any, name: str, where: str) -> Any:
    if not isinstance(item, dict) or name not in item:
        raise BadAnswer(f"{where}.{name} is missing")
    return item[name]


def _labels(item: Any, where: str) -> dict[str, str]:
    metric = _field(item, "metric", where)
    if not isinstance(metric, dict) or not all(isinstance(v, str) for v in metric.values()):
        raise BadAnswer(f"{where}.metric is not an object of strings")
    return dict(metric)


def _point(raw: Any, where: str) -> tuple[float, float]:
    if not isinstance(raw, list) or len(raw) != 2:
        raise BadAnswer(f"{where} is not [time, value]")
    stamp, value = raw
    if isinstance(stamp, bool) or not isinstance(stamp, int | float):
        raise BadAnswer(f"{where}[0] is not a time: {_json(stamp)}")
    return float(stamp), _number(value, f"{where}[1]")


def _number(raw: Any, where: str) -> float:
    """A sample value: Prometheus writes them as strings ("1.5", "NaN", "+Inf")."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            pass
    raise BadAnswer(f"{where} is not a number: {_json(raw)}")


def _json(value: Any) -> str:
    return json.dumps(value)[:60]


def one_line(value: Any) -> str:
    """The first line of ``str(value)``, at most 300 characters, control characters escaped."""
    lines = str(value).strip().splitlines()
    return printable(lines[0][:300]) if lines else ""


def printable(text: str) -> str:
    """``text`` with C0 and C1 control characters (ESC, DEL, ...) written as ``\\x1b``."""
    return "".join(repr(c)[1:-1] if unicodedata.category(c) == "Cc" else c for c in text)
