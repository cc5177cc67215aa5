"""Odd Prometheus answers, slow answers and redirects, served by a real misbehaving server.

Each odd answer is one line naming what is wrong, a ``PrometheusUnavailable`` (exit 3), never
a traceback; a query ends at its deadline however the server dribbles; redirects are refused.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from guardian.cli import main
from guardian.clients.prometheus import InstantSample, PrometheusClient
from guardian.config.model import PrometheusSettings
from guardian.errors import PrometheusUnavailable
from tests.faults import Answer, OddPrometheus, elapsed
from tests.traffic import ratio_slo


def _ok(result: str, kind: str = "vector") -> bytes:
    return f'{{"status":"success","data":{{"resultType":"{kind}","result":{result}}}}}'.encode()


ONE = '{"metric":{},"value":[1,"1"]}'
MB = 1024 * 1024

INSTANT_CORPUS = {
    "no data": (Answer(b'{"status":"success"}'), "no data.result"),
    "no result": (
        Answer(b'{"status":"success","data":{"resultType":"vector"}}'),
        "no data.result",
    ),
    "status error with 200": (
        Answer(b'{"status":"error","errorType":"execution","error":"query timed out\\nmore"}'),
        "status error: query timed out",
    ),
    "no status": (
        Answer(b'{"data":{"resultType":"vector","result":[]}}'),
        'status is null, not "success"',
    ),
    "matrix for a vector": (
        Answer(_ok("[]", "matrix")),
        'data.resultType is "matrix", not vector',
    ),
    "string for a vector": (
        Answer(_ok('[1,"x"]', "string")),
        'data.resultType is "string", not vector',
    ),
    "result not a list": (Answer(_ok("{}")), "data.result is not a list"),
    "no value": (Answer(_ok('[{"metric":{}}]')), "data.result[0].value is missing"),
    "no metric": (Answer(_ok('[{"value":[1,"1"]}]')), "data.result[0].metric is missing"),
    "item not an object": (Answer(_ok("[1]")), "data.result[0].metric is missing"),
    "labels not strings": (
        Answer(_ok('[{"metric":{"job":1},"value":[1,"1"]}]')),
        "data.result[0].metric is not an object of strings",
    ),
    "short value": (
        Answer(_ok(f'[{ONE},{{"metric":{{}},"value":[1]}}]')),
        "data.result[1].value is not [time, value]",
    ),
    "string value": (
        Answer(_ok('[{"metric":{},"value":[1,"abc"]}]')),
        'data.result[0].value[1] is not a number: "abc"',
    ),
    "null value": (
        Answer(_ok('[{"metric":{},"value":[1,null]}]')),
        "data.result[0].value[1] is not a number: null",
    ),
    "boolean value": (
        Answer(_ok('[{"metric":{},"value":[1,true]}]')),
        "data.result[0].value[1] is not a number: true",
    ),
    "string time": (
        Answer(_ok('[{"metric":{},"value":["1","1"]}]')),
        'data.result[0].value[0] is not a time: "1"',
    ),
    "html login page": (
        Answer(b"<html>login required</html>", content_type="text/html; charset=utf-8"),
        "not JSON (Content-Type: text/html)",
    ),
    "not an object": (Answer(b"[]"), "not a JSON object"),
    "deeply nested": (Answer(b"[" * 200_000), "not JSON (Content-Type: application/json)"),
    "not UTF-8": (Answer(b'{"status":"\xff\xfe"}'), "not JSON (Content-Type: application/json)"),
    "empty body": (Answer(b""), "not JSON (Content-Type: application/json)"),
    "huge, declared": (Answer(b" " * MB, repeat=51), "the answer is larger than 50 MB"),
    "huge, streamed": (
        Answer(b" " * MB, repeat=51, declare_length=False),
        "the answer is larger than 50 MB",
    ),
}

RANGE_CORPUS = {
    "vector for a matrix": (Answer(_ok("[]")), 'data.resultType is "vector", not matrix'),
    "no values": (Answer(_ok('[{"metric":{}}]', "matrix")), "data.result[0].values is missing"),
    "values not a list": (
        Answer(_ok('[{"metric":{},"values":{}}]', "matrix")),
        "data.result[0].values is not a list of [time, value]",
    ),
    "bad point": (
        Answer(_ok('[{"metric":{},"values":[[1,"1"],[2,"x"]]}]', "matrix")),
        'data.result[0].values[1][1] is not a number: "x"',
    ),
}


def _client(url: str, timeout: int = 5, **kwargs: object) -> PrometheusClient:
    return PrometheusClient(PrometheusSettings(url=url, timeout=timeout), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("case", sorted(INSTANT_CORPUS))
def test_an_odd_instant_answer_is_one_line_naming_what_is_wrong(case: str) -> None:
    answer, detail = INSTANT_CORPUS[case]
    with OddPrometheus(answer) as server:
        with pytest.raises(PrometheusUnavailable) as caught:
            _client(server.url).instant("vector(1)")
        assert len(server.queries) == 1, "a bad answer is not retried"
    assert caught.value.message == f"bad answer from Prometheus at {server.url}: {detail}"


@pytest.mark.parametrize("case", sorted(RANGE_CORPUS))
def test_an_odd_range_answer_is_one_line_naming_what_is_wrong(case: str) -> None:
    answer, detail = RANGE_CORPUS[case]
    start, end = _at(0), _at(60)
    with OddPrometheus(answer) as server, pytest.raises(PrometheusUnavailable) as caught:
        _client(server.url).range("vector(1)", start, end, 30)
    assert caught.value.message == f"bad answer from Prometheus at {server.url}: {detail}"


def test_numbers_the_client_passes_on_as_read() -> None:
    values = '[{"metric":{"a":"1"},"value":[1,"NaN"]},{"metric":{},"value":[1,"+Inf"]}]'
    with OddPrometheus(Answer(_ok(values))) as server:
        samples = _client(server.url).instant("x")
    assert [s.labels for s in samples] == [{"a": "1"}, {}]
    assert str(samples[0].value) == "nan" and samples[1].value == float("inf")
    with OddPrometheus(Answer(_ok('[12.5,"3"]', "scalar"))) as server:
        assert _client(server.url).instant("scalar(x)") == [InstantSample({}, 3.0)]


@pytest.mark.parametrize("case", ["no data", "matrix for a vector", "null value", "huge, declared"])
def test_eval_on_an_odd_answer_exits_3_with_one_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answer, detail = INSTANT_CORPUS[case]
    with OddPrometheus(answer) as server:
        code = main(["eval", "-c", str(_config(tmp_path, server.url)), "-o", "json"])
    captured = capsys.readouterr()
    assert code == 3
    assert captured.err.splitlines()[0] == (
        f"guardian: bad answer from Prometheus at {server.url}: {detail}"
    )
    assert "Traceback" not in captured.err
    assert {s["status"] for s in json.loads(captured.out)["slos"]} == {"no_data"}


def _config(tmp_path: Path, url: str, timeout: str = "5s", extra: str = "") -> Path:
    path = tmp_path / "guardian.yaml"
    slo = ratio_slo("x", 'job="x"', 99.9, "google-30d")
    path.write_text(
        f"version: guardian/v1\nprometheus: {{url: '{url}', timeout: {timeout}}}\n{extra}"
        f"slos:{slo}\n",
        encoding="utf-8",
    )
    return path


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(1_700_000_000 + seconds, UTC)


# deadlines ----------------------------------------------------------------------------------


def test_a_trickling_answer_is_cut_at_the_timeout() -> None:
    # Headers at once, then one byte a second: every read is quick, the whole answer is not.
    trickle = Answer(_ok(f"[{ONE}]") + b" " * 200, trickle=1.0)
    with OddPrometheus(trickle) as server:
        started = time.monotonic()
        with pytest.raises(PrometheusUnavailable) as caught:
            _client(server.url, timeout=2).instant("vector(1)")
        took = elapsed(started)
    assert caught.value.message == (
        f"cannot query Prometheus at {server.url}: no complete answer within 2s"
    )
    assert took < 3 * 2, f"took {took:.1f}s"


def test_headers_then_silence_is_cut_at_the_timeout() -> None:
    silent = Answer(_ok(f"[{ONE}]"), trickle=600.0)
    with OddPrometheus(silent) as server:
        started = time.monotonic()
        with pytest.raises(PrometheusUnavailable, match="no complete answer within 2s"):
            _client(server.url, timeout=2).instant("vector(1)")
        assert elapsed(started) < 3 * 2


def test_a_server_that_never_answers_is_cut_at_the_timeout() -> None:
    with OddPrometheus(Answer(hang=True)) as server:
        started = time.monotonic()
        with pytest.raises(PrometheusUnavailable, match="no complete answer within 2s"):
            _client(server.url, timeout=2).instant("vector(1)")
        assert elapsed(started) < 3 * 2
        assert len(server.queries) == 1, "no retry once the deadline is spent"


def test_the_retry_happens_only_inside_the_deadline() -> None:
    failing = Answer(b'{"status":"error","error":"overloaded"}', status=503)
    with OddPrometheus(failing) as server:
        started = time.monotonic()
        with pytest.raises(PrometheusUnavailable, match="HTTP 503: overloaded"):
            _client(server.url, timeout=1, retry_wait=5.0).instant("vector(1)")
        assert elapsed(started) < 3 * 1
        assert len(server.queries) == 1, "a 5 s wait does not fit a 1 s deadline"
    with OddPrometheus(failing) as server:
        with pytest.raises(PrometheusUnavailable):
            _client(server.url, timeout=5, retry_wait=0.1).instant("vector(1)")
        assert len(server.queries) == 2, "one retry when it fits"


# redirects ----------------------------------------------------------------------------------


def test_a_redirect_to_another_host_is_refused_and_never_followed() -> None:
    with OddPrometheus(Answer(_ok(f"[{ONE}]"))) as other:
        moved = Answer(status=307, headers=(("Location", f"{other.url}/api/v1/query?x=1"),))
        with OddPrometheus(moved) as server, pytest.raises(PrometheusUnavailable) as caught:
            _client(server.url).instant("vector(1)")
        assert other.queries == []
    assert caught.value.message == (
        f"bad answer from Prometheus at {server.url}: HTTP 307, a redirect to "
        f"{other.url}/api/v1/query; guardian follows no redirects: set prometheus.url to the "
        "address that answers"
    )


def test_a_redirect_on_the_same_host_is_refused_too() -> None:
    moved = Answer(status=302, headers=(("Location", "/prometheus/api/v1/query"),))
    with OddPrometheus(moved) as server, pytest.raises(PrometheusUnavailable) as caught:
        _client(server.url).instant("vector(1)")
    assert len(server.queries) == 1
    assert "HTTP 302, a redirect to /prometheus/api/v1/query;" in caught.value.message
