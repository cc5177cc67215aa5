"""Odd Prometheus answers, slow answers and redirects, served by a real misbehaving server.

Each odd answer is one line naming what is wrong, a ``PrometheusUnavailable`` (exit 3), never
a traceback; a query ends at its deadline however the server dribbles; redirects are refused.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from guardian.app.cli import main
from guardian.clients.prometheus import InstantSample, PrometheusClient
from guardian.config import load_config
from guardian.config.model import PrometheusSettings
from guardian.errors import PrometheusUnavailable
from guardian.evaluation.results import Evaluation
from guardian.evaluation.run import evaluate, evaluation_budget, replay
from guardian.evaluation.source import Deadline, evaluation_deadline
from guardian.pipeline import Cycle
from tests.faults import Answer, OddPrometheus, elapsed, odd_config


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
    "control characters in an error": (
        Answer(b'{"status":"error","error":"\\u001b[2J\\u001b]0;owned\\u0007 \\u009b1m"}'),
        "status error: \\x1b[2J\\x1b]0;owned\\x07 \\x9b1m",
    ),
    "control characters in the Content-Type": (
        Answer(b"<html/>", content_type="text/\x1b[31mhtml"),
        "not JSON (Content-Type: text/\\x1b[31mhtml)",
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
    "huge once unzipped": (
        Answer(gzip.compress(b" " * 51 * MB), headers=(("Content-Encoding", "gzip"),)),
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
        code = main(["eval", "-c", str(odd_config(tmp_path, server.url)), "-o", "json"])
    captured = capsys.readouterr()
    assert code == 3
    assert captured.err.splitlines() == [
        f"guardian: bad answer from Prometheus at {server.url}: {detail}",
        "guardian: blind: every SLO is no_data (1 of 1); no page now means nothing",
    ]
    assert "Traceback" not in captured.err
    assert {s["status"] for s in json.loads(captured.out)["slos"]} == {"no_data"}


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


def test_an_evaluation_ends_within_its_deadline_when_prometheus_never_answers(
    tmp_path: Path,
) -> None:
    # 8 windows on 2 threads, 2 s per query: the budget (2 x timeout = 4 s) cuts the rest.
    config = load_config(odd_config(tmp_path, "http://127.0.0.1:1", timeout="2s"))
    assert evaluation_budget(2, config.daemon.interval) == 4.0
    with OddPrometheus(Answer(hang=True)) as server:
        client = _client(server.url, timeout=2)
        started = time.monotonic()
        evaluation, error = evaluate(config.slos, client, None, "raw", 2, budget=4.0)
        took = elapsed(started)
    assert took < 3 * 4.0, f"took {took:.1f}s"
    assert error == f"cannot query Prometheus at {server.url}: no complete answer within 2s"
    result = evaluation.slos[0]
    assert result.status == "no_data" and result.reason == error
    assert evaluation.queries == 8 and len(server.queries) <= 6


def test_the_daemon_interval_bounds_an_evaluation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # timeout 5 s, interval 2 s: the whole evaluation gets 1.6 s, not 8 windows x 5 s.
    path = odd_config(
        tmp_path, "http://127.0.0.1:1", timeout="5s", extra="daemon: {interval: 2s}\n"
    )
    config = load_config(path)
    assert evaluation_budget(config.prometheus.timeout, config.daemon.interval) == 1.6
    with OddPrometheus(Answer(hang=True)) as server:
        path.write_text(path.read_text().replace("http://127.0.0.1:1", server.url))
        started = time.monotonic()
        code = main(["eval", "-c", str(path), "-o", "json"])
        took = elapsed(started)
    assert code == 3
    assert took < 3 * 1.6, f"took {took:.1f}s"
    assert capsys.readouterr().err.splitlines() == [
        "guardian: no answer within the evaluation's deadline (1.6s)",
        "guardian: blind: every SLO is no_data (1 of 1); no page now means nothing",
    ]


def test_the_daemon_cycle_evaluates_within_the_interval(tmp_path: Path) -> None:
    with OddPrometheus(Answer(hang=True)) as server:
        path = odd_config(tmp_path, server.url, timeout="5s", extra="daemon: {interval: 2s}\n")
        config = load_config(path)
        client = PrometheusClient(config.prometheus)
        # evaluate() needs only the config and Prometheus; the rest is for acting
        cycle = Cycle(config, {}, None, None, None, client)  # type: ignore[arg-type]
        started = time.monotonic()
        evaluation = cycle.evaluate()
        took = elapsed(started)
    assert took < 3 * 1.6, f"took {took:.1f}s"
    result = evaluation.slos[0]
    assert result.status == "no_data"
    assert result.reason == "no answer within the evaluation's deadline (1.6s)"


def test_a_query_in_flight_ends_at_the_evaluation_deadline_when_that_comes_first() -> None:
    with OddPrometheus(Answer(hang=True)) as server:
        started = time.monotonic()
        cut = Deadline(started + 1.0, "no answer within the evaluation's deadline (1s)")
        with evaluation_deadline(cut), pytest.raises(PrometheusUnavailable) as caught:
            _client(server.url, timeout=30).instant("vector(1)")
        took = elapsed(started)
    assert caught.value.message == "no answer within the evaluation's deadline (1s)"
    assert took < 3 * 1.0, f"took {took:.1f}s"


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


# numbers that cannot be -----------------------------------------------------------------------

AT = datetime(2024, 7, 1, tzinfo=UTC)
DNS_SLO = "\n  - name: x\n    objective: 99\n    sli: {coredns_errors: {selector: 'job=\"x\"'}}"


def _series(labels: dict[str, str], value: str) -> str:
    return json.dumps({"metric": labels, "value": [AT.timestamp(), value]})


def _raw(
    values: dict[str, dict[str, str]], twice: dict[str, tuple[str, str]] | None = None
) -> Callable[[str], Answer]:
    """Per window (``5m``, or ``*`` for every other), the errors, total and age of SLO x;
    ``twice`` adds, per window, a second series for one part, with the same labels."""

    def answer(promql: str) -> Answer:
        window = re.findall(r"\[(\d+[smhdw])\]", promql)[0]
        chosen = {"errors": "0", "total": "10", "age": "5", **values.get("*", {})}
        chosen.update(values.get(window, {}))
        if "timestamp(" not in promql:
            chosen.pop("age")
        parts = [_series({"guardian": f"x:{p}"}, v) for p, v in chosen.items()]
        if twice and window in twice:
            part, value = twice[window]
            parts.append(_series({"guardian": f"x:{part}"}, value))
        return Answer(_ok(f"[{','.join(parts)}]"))

    return answer


def _rules(ratio: str, total: str, twice: str | None = None) -> Callable[[str], Answer]:
    """Recorded series of SLO x; ``twice``: a second 5m ratio, from another rule group."""

    def answer(promql: str) -> Answer:
        w = re.findall(r"ratio_rate(\w+?)\|", promql)[0]
        parts = [
            _series({"__name__": f"slo:sli_error:ratio_rate{w}", "slo": "x"}, ratio),
            _series({"__name__": f"slo:sli_total:rate{w}", "slo": "x"}, total),
            _series({"guardian": "stamp", "slo": "x"}, str(AT.timestamp() - 5)),
        ]
        if twice is not None and w == "5m":
            labels = {"__name__": "slo:sli_error:ratio_rate5m", "slo": "x", "group": "copy"}
            parts.append(_series(labels, twice))
        return Answer(_ok(f"[{','.join(parts)}]"))

    return answer


NUMBER_CORPUS: dict[str, tuple[Callable[[str], Answer], str]] = {
    "NaN error rate": (
        _raw({"5m": {"errors": "NaN"}}),
        "Prometheus answered NaN for the 5m error rate",
    ),
    "NaN error rate, 1h only": (
        _raw({"1h": {"errors": "NaN"}}),
        "Prometheus answered NaN for the 1h error rate",
    ),
    "infinite total": (
        _raw({"*": {"total": "+Inf"}}),
        "Prometheus answered +Inf for the 5m event rate",
    ),
    "negative total": (
        _raw({"*": {"total": "-100"}}),
        "Prometheus answered -100 for the 5m event rate, below 0",
    ),
    "negative errors": (
        _raw({"*": {"errors": "-10", "total": "100"}}),
        "Prometheus answered -10 for the 5m error rate, below 0",
    ),
    "more errors than events": (
        _raw({"*": {"errors": "200", "total": "100"}}),
        "Prometheus answered more errors than events for 5m: 200/s of 100/s",
    ),
    "errors with no events": (
        _raw({"*": {"errors": "5", "total": "0"}}),
        "Prometheus answered more errors than events for 5m: 5/s of 0/s",
    ),
    "errors with a total rounded below 0": (
        _raw({"*": {"errors": "0.001", "total": "-1e-12"}}),
        "Prometheus answered more errors than events for 5m: 0.001/s of 0/s",
    ),
    "two series for the error rate": (
        _raw({}, twice={"5m": ("errors", "10")}),
        "Prometheus answered more than one series for the 5m error rate; guardian expects one",
    ),
    "two series for the age": (
        _raw({}, twice={"5m": ("age", "4")}),
        "Prometheus answered more than one series for the 5m age of the newest sample; "
        "guardian expects one",
    ),
    "two series for a recorded ratio": (
        _rules("0", "5", twice="0.9"),
        "Prometheus answered more than one series for the 5m error ratio; guardian expects one",
    ),
    "NaN age": (
        _raw({"*": {"age": "NaN"}}),
        "Prometheus answered NaN for the age of the newest sample",
    ),
    "negative age": (
        _raw({"*": {"age": "-100"}}),
        "Prometheus answered -100s for the age of the newest sample, below 0",
    ),
    "NaN recorded ratio": (_rules("NaN", "5"), "Prometheus answered NaN for the 5m error ratio"),
    "recorded ratio above 1": (
        _rules("1.5", "5"),
        "Prometheus answered 1.5 for the 5m error ratio, above 1",
    ),
    "negative recorded ratio": (
        _rules("-0.2", "5"),
        "Prometheus answered -0.2 for the 5m error ratio, below 0",
    ),
}


def _evaluate(answer: Callable[[str], Answer], source: str) -> tuple[Evaluation, str]:
    with OddPrometheus(answer) as server:
        settings = PrometheusSettings(url=server.url, timeout=5, source=source)  # type: ignore[arg-type]
        slos = load_config(_slos_file(server.url)).slos
        return evaluate(slos, PrometheusClient(settings), AT, settings.source)


def _slos_file(url: str) -> Path:
    path = Path(tempfile.mkdtemp()) / "guardian.yaml"
    path.write_text(f"version: guardian/v1\nprometheus: {{url: '{url}'}}\nslos:{DNS_SLO}\n")
    return path


@pytest.mark.parametrize("case", sorted(NUMBER_CORPUS))
def test_a_number_that_cannot_be_is_no_data_with_the_reason(case: str) -> None:
    answer, reason = NUMBER_CORPUS[case]
    source = "rules" if "recorded" in case else "raw"
    evaluation, error = _evaluate(answer, source)
    assert error == ""
    result = evaluation.slos[0]
    assert (result.status, result.reason) == ("no_data", reason)
    assert not any(w.firing for w in result.windows)
    burns = [b for w in result.windows for b in (w.long_burn, w.short_burn) if b is not None]
    assert all(math.isfinite(b) and b >= 0 for b in burns), burns


@pytest.mark.parametrize(
    ("answer", "source"),
    [
        (_raw({}), "raw"),
        (_raw({"*": {"errors": "0", "total": "0"}}), "raw"),
        (_raw({"*": {"age": "-0.0004"}}), "raw"),  # millisecond rounding of the query time
        (_rules("NaN", "0"), "rules"),  # no events at all: 0/0 is no errors
        (_rules("0.0001", "5"), "rules"),
    ],
    ids=["calm", "no events", "age rounding", "recorded 0 over 0", "recorded ratio"],
)
def test_plausible_numbers_stay_ok(answer: Callable[[str], Answer], source: str) -> None:
    evaluation, error = _evaluate(answer, source)
    assert (error, evaluation.slos[0].status, evaluation.slos[0].reason) == ("", "ok", "")


def test_eval_says_blind_and_exits_3_when_every_slo_is_no_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nan = _raw({"*": {"errors": "NaN", "total": "NaN", "age": "NaN"}})
    with OddPrometheus(nan) as server:
        path = _slos_file(server.url)
        assert main(["eval", "-c", str(path), "--at", "2024-07-01T00:00:00Z"]) == 3
    assert capsys.readouterr().err.splitlines() == [
        "guardian: warning: x: no_data: Prometheus answered NaN for the 5m error rate",
        "guardian: blind: every SLO is no_data (1 of 1); no page now means nothing",
    ]


def test_a_bad_number_in_the_period_only_loses_the_budget_and_says_why() -> None:
    evaluation, error = _evaluate(_raw({"30d": {"total": "-1"}}), "raw")
    result = evaluation.slos[0]
    assert (error, result.status, result.reason) == ("", "ok", "")
    assert result.budget_remaining is None
    assert result.budget_note == "Prometheus answered -1 for the 30d event rate, below 0"


def test_eval_shows_why_the_budget_is_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    with OddPrometheus(_raw({"30d": {"errors": "NaN"}})) as server:
        path = _slos_file(server.url)
        assert main(["eval", "-c", str(path), "--at", "2024-07-01T00:00:00Z", "-o", "json"]) == 0
        captured = capsys.readouterr()
        assert main(["eval", "-c", str(path), "--at", "2024-07-01T00:00:00Z"]) == 0
        table = capsys.readouterr().out
    note = "Prometheus answered NaN for the 30d error rate"
    assert captured.err.splitlines() == [f"guardian: warning: x: budget unknown: {note}"]
    slo = json.loads(captured.out)["slos"][0]
    assert (slo["status"], slo["budget_remaining"], slo["budget_note"]) == ("ok", None, note)
    assert _squeezed(f"budget unknown: {note}") in _squeezed(table)


def _squeezed(table: str) -> str:
    """A table's text without borders or spaces: a cell wrapped over lines reads on."""
    return re.sub(r"[\s\u2500-\u257f]", "", table)


def test_a_total_rounded_below_zero_is_no_events_not_a_negative_ratio() -> None:
    # 1e-13 errors of -1e-12 events was a ratio of -0.1: "ok" with 1100% of the budget left
    evaluation, error = _evaluate(_raw({"*": {"errors": "1e-13", "total": "-1e-12"}}), "raw")
    result = evaluation.slos[0]
    assert (error, result.status, result.reason) == ("", "ok", "")
    assert result.budget_remaining == 1.0
    assert {w.long_error_ratio for w in result.windows} == {0.0}
    assert {w.long_burn for w in result.windows} | {w.short_burn for w in result.windows} == {0.0}


def test_a_recorded_ratio_with_a_total_rounded_below_zero_counts_no_events() -> None:
    evaluation, _ = _evaluate(_rules("NaN", "-1e-12"), "rules")
    result = evaluation.slos[0]
    assert (result.status, result.reason, result.budget_remaining) == ("ok", "", 1.0)
    assert {w.long_events for w in result.windows} == {0.0}


# header values, refused queries ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("SEKRIT3\n", "InvalidHeader"),
        ("SEK\rRIT3", "InvalidHeader"),
        ("SEKRIT3€", "UnicodeEncodeError"),
    ],
    ids=["line break", "carriage return", "beyond Latin-1"],
)
def test_a_header_value_that_cannot_be_sent_is_never_shown(value: str, kind: str) -> None:
    with OddPrometheus(Answer(_ok(f"[{ONE}]"))) as server:
        settings = PrometheusSettings(url=server.url, headers=(("X-Api-Key", value),))
        with pytest.raises(PrometheusUnavailable) as caught:
            PrometheusClient(settings).instant("vector(1)")
        assert server.queries == []
    assert caught.value.message == (
        f"cannot query Prometheus at {server.url}: {kind}: a value in prometheus.headers or the "
        "bearer token cannot be sent in an HTTP header (a line break, or a character beyond "
        "Latin-1?); the value is not shown"
    )


def test_a_bearer_token_that_cannot_be_sent_never_reaches_eval_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUARDIAN_TEST_TOKEN", "SEK\nRIT3")
    with OddPrometheus(Answer(_ok(f"[{ONE}]"))) as server:
        extra = "  bearer_token_env: GUARDIAN_TEST_TOKEN\n"
        path = _slos_file(server.url)
        text = path.read_text().replace("prometheus: {url: ", "prometheus:\n  url: ")
        path.write_text(text.replace(f"'{server.url}'}}\n", f"'{server.url}'\n{extra}"))
        code = main(["eval", "-c", str(path), "-o", "json"])
    captured = capsys.readouterr()
    assert code == 3
    assert "SEK" not in captured.err + captured.out and "RIT3" not in captured.err + captured.out
    assert "InvalidHeader: a value in prometheus.headers or the bearer token" in captured.err


REFUSED_SLO = (
    "\n  - name: y\n    objective: 99\n    sli: {coredns_errors: {selector: 'job=\"refused\"'}}"
)
REFUSAL = (
    b'{"status":"error","errorType":"bad_data","error":"1:9: parse error: bad [/] \\u001b[31m"}'
)
REFUSAL_TEXT = "1:9: parse error: bad [/] \\x1b[31m"


def _refusing(promql: str) -> Answer:
    """Refuses (400) every query that names job="refused"; calm numbers for SLO x."""
    if 'job="refused"' in promql:
        return Answer(REFUSAL, status=400)
    return _raw({})(promql)


def _two_slos(url: str, refused: bool = True) -> Path:
    path = _slos_file(url)
    path.write_text(path.read_text().rstrip("\n") + (REFUSED_SLO if refused else "") + "\n")
    return path


def test_a_refused_query_is_one_line_never_retried() -> None:
    with OddPrometheus(Answer(REFUSAL, status=400)) as server:
        with pytest.raises(PrometheusUnavailable) as caught:
            _client(server.url).instant("sum((")
        assert len(server.queries) == 1
    assert caught.value.message == f"Prometheus refused the query (400: {REFUSAL_TEXT})"


@pytest.mark.parametrize(("parallel", "budget"), [(1, None), (2, 20.0)], ids=["serial", "budget"])
def test_a_refused_query_makes_only_its_slo_no_data_naming_it_and_the_window(
    parallel: int, budget: float | None
) -> None:
    with OddPrometheus(_refusing) as server:
        config = load_config(_two_slos(server.url))
        client = PrometheusClient(config.prometheus)
        evaluation, error = evaluate(config.slos, client, AT, "raw", parallel, budget)
    reason = (
        f"Prometheus refused the 5m query of SLO y (400: {REFUSAL_TEXT}); check the SLO's selector"
    )
    assert error == reason
    x, y = evaluation.slos
    assert (x.status, x.reason, x.budget_remaining) == ("ok", "", 1.0)
    assert (y.status, y.reason) == ("no_data", reason)
    assert y.budget_note == reason.replace("5m query", "30d query")
    assert evaluation.queries == 8 + 2 * 8  # each refused window again for x and y alone


def test_eval_with_a_refused_query_prints_the_table_and_exits_3(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with OddPrometheus(_refusing) as server:
        path = _two_slos(server.url)
        code = main(["eval", "-c", str(path), "--at", "2024-07-01T00:00:00Z"])
    captured = capsys.readouterr()
    assert code == 3
    reason = (
        f"Prometheus refused the 5m query of SLO y (400: {REFUSAL_TEXT}); check the SLO's selector"
    )
    assert captured.err.splitlines() == [f"guardian: {reason}"]
    assert "\x1b" not in captured.out and "x (99%)" in captured.out and "y (99%)" in captured.out
    assert _squeezed(reason) in _squeezed(captured.out)


def test_eval_is_blind_when_the_only_slo_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with OddPrometheus(Answer(REFUSAL, status=400)) as server:
        path = _slos_file(server.url)
        code = main(["eval", "-c", str(path), "-o", "json"])
        assert len(server.queries) == 8, "one SLO: nothing to ask again"
    assert code == 3
    assert capsys.readouterr().err.splitlines() == [
        f"guardian: Prometheus refused the 5m query of SLO x (400: {REFUSAL_TEXT}); check the "
        "SLO's selector",
        "guardian: blind: every SLO is no_data (1 of 1); no page now means nothing",
    ]


def test_two_points_at_one_instant_in_a_replay_are_a_bad_answer() -> None:
    start = AT.timestamp()

    def answer(promql: str) -> Answer:
        window = re.findall(r"\[(\d+[smhdw])\]", promql)[0]
        points = {"errors": [[start, "0"]], "total": [[start, "10"]], "age": [[start, "5"]]}
        if window == "5m":  # a second series of the same labels: the last would page
            points["errors2"] = [[start, "10"]]
        if "timestamp(" not in promql:
            points.pop("age")
        series = [
            json.dumps({"metric": {"guardian": f"x:{p.rstrip('2')}"}, "values": v})
            for p, v in points.items()
        ]
        return Answer(_ok(f"[{','.join(series)}]", "matrix"))

    with OddPrometheus(answer) as server:
        slos = load_config(_slos_file(server.url)).slos
        found = replay(slos, _client(server.url), AT, AT, 60)
    assert found.error == ""
    (step,) = found.steps
    assert (step.slos[0].status, step.slos[0].reason) == (
        "no_data",
        "Prometheus answered more than one series for the 5m error rate; guardian expects one",
    )
