"""Configuration: every error message, exactly; valid configs load into the right model."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from guardian.app.cli import main
from guardian.config import ApiserverLatencySLI, load_config
from guardian.config.spec import FileSpec
from guardian.errors import ConfigErrors
from tests.lab_fixture import ROOT

BASE: dict[str, Any] = {
    "version": "guardian/v1",
    "prometheus": {"url": "http://127.0.0.1:9090"},
    "slos": [
        {"name": "api-read", "objective": 99, "sli": {"apiserver_latency": {}}},
        {"name": "dns-errors", "objective": 99.9, "sli": {"coredns_errors": {}}},
    ],
}

Mutation = Callable[[dict[str, Any]], None]


def _slo(index: int, **changes: Any) -> Mutation:
    return lambda doc: doc["slos"][index].update(changes)


def _sli(index: int, kind: str, **changes: Any) -> Mutation:
    return lambda doc: doc["slos"][index]["sli"].setdefault(kind, {}).update(changes)


CASES: list[tuple[str, Mutation, str]] = [
    (
        "an objective of 100 or more is refused",
        _slo(1, objective=101),
        "slos[1] 'dns-errors': objective: must be > 0 and < 100 (got 101)",
    ),
    (
        "a misspelt key is an error, not ignored",
        _slo(1, objectiv=99),
        "slos[1] 'dns-errors': objectiv: unknown key; remove it or check its spelling",
    ),
    (
        "an objective must be a number",
        _slo(1, objective="high"),
        "slos[1] 'dns-errors': objective: must be a number (got 'high')",
    ),
    (
        "verbs is one of three words",
        _sli(0, "apiserver_latency", verbs="reads"),
        "slos[0] 'api-read': sli: apiserver_latency: verbs: must be one of read, write, all "
        "(got 'reads')",
    ),
    (
        "a period is a Prometheus duration",
        _slo(0, period="30x"),
        "slos[0] 'api-read': period: must be a duration like 30s, 5m, 1h or 30d (got '30x')",
    ),
    (
        "a bare number is not a duration",
        _sli(0, "apiserver_latency", thresholds={"namespace": 5}),
        "slos[0] 'api-read': sli: apiserver_latency: thresholds: namespace: must be a duration "
        "like 30s, 5m, 1h or 30d (got 5)",
    ),
    (
        "an unknown window set names the known ones",
        _slo(0, windows="fast"),
        "slos[0] 'api-read': windows: unknown window set 'fast' (known: google-28d, google-30d)",
    ),
    (
        "a nameless SLO is located by index",
        lambda doc: doc["slos"][0].pop("name"),
        "slos[0]: name: is required",
    ),
    (
        "names are DNS-like",
        _slo(0, name="API_Read"),
        "slos[0] 'API_Read': name: must be lower-case letters, digits and '-', at most 63 "
        "(got 'API_Read')",
    ),
    (
        "two SLOs may not share a name",
        lambda doc: doc["slos"].append(copy.deepcopy(doc["slos"][0])),
        "slos[2] 'api-read': name: already used by slos[0] in {file}",
    ),
    (
        "prometheus is required",
        lambda doc: doc.pop("prometheus"),
        "prometheus: is required; add 'prometheus: {{url: ...}}'",
    ),
    (
        "the URL needs a scheme",
        lambda doc: doc["prometheus"].update(url="localhost:9090"),
        "prometheus: url: must be an http:// or https:// URL (got 'localhost:9090')",
    ),
    (
        "one way of authenticating at a time",
        lambda doc: doc["prometheus"].update(
            bearer_token_file="/t", basic_auth={"username": "u", "password_file": "/p"}
        ),
        "prometheus: use only one of bearer_token_file, bearer_token_env and basic_auth",
    ),
    (
        "the version is checked first",
        lambda doc: doc.update(version="guardian/v2"),
        "version: must be guardian/v1 (got 'guardian/v2')",
    ),
    (
        "a short window must be shorter than its long window",
        lambda doc: doc.update(
            window_sets={"f": [{"severity": "page", "long": "5m", "short": "1h", "factor": 14.4}]}
        ),
        "window_sets: f[0]: short: must be shorter than long (got short 1h, long 5m)",
    ),
    (
        "a pair needs a budget fraction or a factor",
        lambda doc: doc.update(
            window_sets={"f": [{"severity": "page", "long": "1h", "short": "5m"}]}
        ),
        "window_sets: f[0]: give exactly one of budget_fraction and factor",
    ),
    (
        "severity is page or ticket",
        lambda doc: doc.update(
            window_sets={"f": [{"severity": "warn", "long": "1h", "short": "5m", "factor": 2}]}
        ),
        "window_sets: f[0]: severity: must be one of page, ticket (got 'warn')",
    ),
    (
        "built-in window sets cannot be redefined",
        lambda doc: doc.update(
            window_sets={
                "google-30d": [{"severity": "page", "long": "1h", "short": "5m", "factor": 2}]
            }
        ),
        "window_sets: google-30d: is built in; pick another name",
    ),
    (
        "selectors are label matchers",
        _sli(0, "apiserver_latency", selector="cluster=prod"),
        "slos[0] 'api-read': sli: apiserver_latency: selector: must be label matchers like "
        'cluster="prod", job="apiserver" (got \'cluster=prod\')',
    ),
    (
        "parallel queries are bounded",
        lambda doc: doc["prometheus"].update(parallel_queries=17),
        "prometheus: parallel_queries: must be <= 16 (got 17)",
    ),
    (
        "an empty window set is refused",
        lambda doc: doc.update(window_sets={"f": []}),
        "window_sets: 'f' has no window pairs",
    ),
    (
        "a budget fraction is a share of the budget",
        lambda doc: doc.update(
            window_sets={
                "f": [{"severity": "page", "long": "1h", "short": "5m", "budget_fraction": 2}]
            }
        ),
        "window_sets: f[0]: budget_fraction: must be > 0 and <= 1 (got 2)",
    ),
    (
        "a factor is positive",
        lambda doc: doc.update(
            window_sets={"f": [{"severity": "page", "long": "1h", "short": "5m", "factor": 0}]}
        ),
        "window_sets: f[0]: factor: must be a finite number > 0 (got 0)",
    ),
    (
        "rcodes may not be empty",
        _sli(1, "coredns_errors", rcodes=[]),
        "slos[1] 'dns-errors': sli: coredns_errors: rcodes: must not be empty (got [])",
    ),
    (
        "min_events is not negative",
        _slo(0, min_events=-1),
        "slos[0] 'api-read': min_events: must be >= 0 (got -1)",
    ),
    (
        "a ratio needs the window placeholder",
        lambda doc: doc["slos"][0].update(
            sli={"ratio": {"errors": "sum(rate(e[5m]))", "total": "sum(rate(t[{{window}}]))"}}
        ),
        "slos[0] 'api-read': sli: ratio: errors: must contain the {{{{window}}}} placeholder, "
        "e.g. sum(rate(x_total[{{{{window}}}}]))",
    ),
    (
        "exactly one SLI kind",
        lambda doc: doc["slos"][0].update(sli={}),
        "slos[0] 'api-read': sli: give exactly one SLI kind of apiserver_latency, "
        "coredns_errors, ratio, latency (got 0)",
    ),
    (
        "rejected_are_bad is true or false, not a word that looks like one",
        _sli(0, "apiserver_latency", rejected_are_bad="yes"),
        "slos[0] 'api-read': sli: apiserver_latency: rejected_are_bad: must be true or false "
        "(got 'yes')",
    ),
    (
        "rejected_are_bad is not a number",
        _sli(0, "apiserver_latency", rejected_are_bad=1),
        "slos[0] 'api-read': sli: apiserver_latency: rejected_are_bad: must be true or false "
        "(got 1)",
    ),
    (
        "rejected_are_bad belongs to apiserver_latency only",
        _sli(1, "coredns_errors", rejected_are_bad=True),
        "slos[1] 'dns-errors': sli: coredns_errors: rejected_are_bad: unknown key; remove it or "
        "check its spelling",
    ),
    (
        "a threshold on the queue-inclusive histogram is one of its buckets",
        _sli(
            0,
            "apiserver_latency",
            metric="apiserver_request_duration_seconds",
            thresholds={"namespace": "7s"},
        ),
        "slos[0] 'api-read': sli: apiserver_latency: thresholds: namespace: must be a bucket of "
        "apiserver_request_duration_seconds, one of 1s, 2s, 3s, 4s, 5s, 6s, 8s, 10s, 15s, 20s, "
        "30s, 45s, 60s (got '7s')",
    ),
    (
        "a write threshold past its last bucket",
        _sli(
            0,
            "apiserver_latency",
            metric="apiserver_request_duration_seconds",
            thresholds={"write": "2m"},
        ),
        "slos[0] 'api-read': sli: apiserver_latency: thresholds: write: must be a bucket of "
        "apiserver_request_duration_seconds, one of 1s, 2s, 3s, 4s, 5s, 6s, 8s, 10s, 15s, 20s, "
        "30s, 45s, 60s (got '2m')",
    ),
    (
        "a latency bucket is a number",
        lambda doc: doc["slos"][0].update(sli={"latency": {"metric": "x", "le": "fast"}}),
        "slos[0] 'api-read': sli: latency: le: must be a bucket boundary like \"0.5\" (got 'fast')",
    ),
    (
        "reserved label names are refused",
        _slo(0, labels={"slo": "x"}),
        "slos[0] 'api-read': labels: 'slo' is not a usable label name (reserved: slo, window, "
        "severity, long, short)",
    ),
    (
        "sli must be a mapping",
        _slo(0, sli=[]),
        "slos[0] 'api-read': sli: must be a mapping (got [])",
    ),
]


def _write(tmp_path: Path, doc: Any, name: str = "slos.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@pytest.mark.parametrize(("mutate", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_config_error_messages_are_exact(tmp_path: Path, mutate: Mutation, expected: str) -> None:
    doc = copy.deepcopy(BASE)
    mutate(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(ConfigErrors) as caught:
        load_config(path)
    assert caught.value.message == f"{path}: " + expected.format(file=path)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["slos"][0]["objective"] = 0
    doc["slos"][1]["period"] = "soon"
    path = _write(tmp_path, doc)
    with pytest.raises(ConfigErrors) as caught:
        load_config(path)
    assert [e.message for e in caught.value.errors] == [
        f"{path}: slos[0] 'api-read': objective: must be > 0 and < 100 (got 0)",
        f"{path}: slos[1] 'dns-errors': period: must be a duration like 30s, 5m, 1h or 30d "
        "(got 'soon')",
    ]


def _error(path: Path) -> str:
    with pytest.raises(ConfigErrors) as caught:
        load_config(path)
    return caught.value.message


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: guardian/v1\nslos: [\n  - name: x\n", encoding="utf-8")
    assert _error(path) == (f"{path}: line 3: not valid YAML: did not find expected node content")


def test_file_level_errors(tmp_path: Path) -> None:
    assert _error(tmp_path / "nope.yaml") == f"{tmp_path / 'nope.yaml'}: no such file or directory"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _error(empty) == f"{empty}: no *.yaml files in this directory"
    listing = _write(tmp_path, ["version", "guardian/v1"], "list.yaml")
    assert _error(listing) == f"{listing}: must be a mapping starting with 'version: guardian/v1'"


def test_a_window_set_defined_twice_across_files(tmp_path: Path) -> None:
    pair = [{"severity": "page", "long": "1h", "short": "5m", "factor": 14.4}]
    _write(tmp_path, {**BASE, "window_sets": {"fast": pair}}, "a.yaml")
    doc = {"version": "guardian/v1", "window_sets": {"fast": pair}}
    second = _write(tmp_path, doc, "b.yaml")
    assert _error(tmp_path) == (
        f"{second}: window_sets: fast: already defined in {tmp_path / 'a.yaml'}"
    )


def test_a_directory_is_merged_and_errors_name_each_file(tmp_path: Path) -> None:
    _write(tmp_path, {"version": "guardian/v1", "prometheus": {"url": "http://p:9090"}}, "a.yaml")
    _write(tmp_path, {"version": "guardian/v1", "slos": BASE["slos"]}, "b.yaml")
    config = load_config(tmp_path)
    assert [s.name for s in config.slos] == ["api-read", "dns-errors"]
    assert config.prometheus.url == "http://p:9090"
    _write(tmp_path, {"version": "guardian/v1", "prometheus": {"url": "http://q:9090"}}, "c.yaml")
    with pytest.raises(ConfigErrors) as caught:
        load_config(tmp_path)
    assert (
        caught.value.message
        == f"{tmp_path / 'c.yaml'}: prometheus: already given in "
        + str(tmp_path / "a.yaml")
        + "; keep one"
    )


def test_defaults_follow_the_kubernetes_mixin(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, BASE))
    slo = config.slo("api-read")
    assert isinstance(slo.sli, ApiserverLatencySLI)
    assert (slo.sli.resource_threshold, slo.sli.namespace_threshold) == ("1", "5")
    assert (slo.sli.cluster_threshold, slo.sli.write_threshold) == ("30", "1")
    assert slo.period == 30 * 86400
    factors = [(p.severity, p.long, p.short, round(p.factor(slo.period), 6)) for p in slo.windows]
    assert factors == [
        ("page", 3600, 300, 14.4),
        ("page", 6 * 3600, 1800, 6.0),
        ("ticket", 86400, 7200, 3.0),
        ("ticket", 3 * 86400, 6 * 3600, 1.0),
    ]


def test_rejected_are_bad_is_off_by_default_and_reaches_the_model(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["slos"].append(
        {
            "name": "api-shedding",
            "objective": 99,
            "sli": {"apiserver_latency": {"rejected_are_bad": True}},
        }
    )
    config = load_config(_write(tmp_path, doc))
    default, shedding = config.slo("api-read").sli, config.slo("api-shedding").sli
    assert isinstance(default, ApiserverLatencySLI) and isinstance(shedding, ApiserverLatencySLI)
    assert (default.rejected_are_bad, shedding.rejected_are_bad) == (False, True)


def test_buckets_are_checked_only_on_the_queue_inclusive_histogram(tmp_path: Path) -> None:
    """The SLI histogram's thresholds load as before; the other histogram's defaults load."""
    doc = copy.deepcopy(BASE)
    doc["slos"][0]["sli"] = {"apiserver_latency": {"thresholds": {"namespace": "7s"}}}
    queued = {"metric": "apiserver_request_duration_seconds", "verbs": "all"}
    doc["slos"].append({"name": "q", "objective": 99, "sli": {"apiserver_latency": queued}})
    config = load_config(_write(tmp_path, doc))
    mixin, sli = config.slo("api-read").sli, config.slo("q").sli
    assert isinstance(mixin, ApiserverLatencySLI) and isinstance(sli, ApiserverLatencySLI)
    assert mixin.namespace_threshold == "7"
    assert (sli.resource_threshold, sli.namespace_threshold) == ("1", "5")
    assert (sli.cluster_threshold, sli.write_threshold) == ("30", "1")


def test_a_28_day_period_gets_sloth_s_factors(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["slos"][0]["period"] = "28d"
    slo = load_config(_write(tmp_path, doc)).slo("api-read")
    assert [round(p.factor(slo.period), 4) for p in slo.windows] == [13.44, 5.6, 2.8, 0.9333]


def test_custom_windows_may_be_seconds(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["window_sets"] = {
        "lab": [{"severity": "page", "long": "60s", "short": "5s", "budget_fraction": 0.02}]
    }
    doc["slos"][0].update(period="1h", windows="lab")
    slo = load_config(_write(tmp_path, doc)).slo("api-read")
    assert (slo.windows[0].long, slo.windows[0].short) == (60, 5)
    assert slo.windows[0].factor(slo.period) == pytest.approx(1.2)


def test_check_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _write(tmp_path, BASE, "good.yaml")
    assert main(["check", "-c", str(good)]) == 0
    assert "ok (2 SLOs, 8 window pairs, 0 playbooks, 1 files)" in capsys.readouterr().out
    doc = copy.deepcopy(BASE)
    doc["slos"][1]["objective"] = 101
    bad = _write(tmp_path, doc, "bad.yaml")
    assert main(["check", "-c", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"guardian: {bad}: slos[1] 'dns-errors': objective: must be > 0 and < 100 (got 101)\n"
    )
    assert main(["check", "-c", str(tmp_path / "missing.yaml")]) == 2


def test_secret_sources_fail_with_a_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from guardian.clients.prometheus import PrometheusClient
    from guardian.errors import ConfigError

    settings = load_config(_write(tmp_path, BASE)).prometheus
    monkeypatch.delenv("GUARDIAN_TEST_TOKEN", raising=False)
    with pytest.raises(ConfigError) as caught:
        PrometheusClient(replace(settings, bearer_token_env="GUARDIAN_TEST_TOKEN"))
    assert caught.value.message == (
        "prometheus: bearer_token_env: variable GUARDIAN_TEST_TOKEN is not set"
    )
    missing = str(tmp_path / "password")
    with pytest.raises(ConfigError) as caught:
        PrometheusClient(
            replace(settings, basic_auth_username="u", basic_auth_password_file=missing)
        )
    assert caught.value.message == (
        f"prometheus: basic_auth: password_file: cannot read {missing}: No such file or directory"
    )


def test_shipped_configs_are_valid() -> None:
    root = Path(__file__).resolve().parent.parent
    for path in [root / "config", *sorted((root / "examples").glob("*/guardian.yaml"))]:
        assert load_config(path).slos, path


def test_committed_json_schema_is_current() -> None:
    import json

    root = Path(__file__).resolve().parent.parent
    committed = json.loads((root / "config" / "guardian.schema.json").read_text())
    assert committed == FileSpec.model_json_schema()


def test_the_slack_example_merges_with_the_shipped_config(tmp_path: Path) -> None:
    import shutil

    for file in (ROOT / "config").glob("*.yaml"):
        shutil.copy(file, tmp_path / file.name)
    shutil.copy(ROOT / "examples" / "slack" / "slack.yaml", tmp_path / "slack.yaml")
    (tmp_path / "policy.yaml").write_text(
        (tmp_path / "policy.yaml").read_text().replace("../playbooks", str(ROOT / "playbooks"))
    )
    config = load_config(tmp_path)
    assert config.slack is not None
    assert config.slack.mode == "socket" and config.slack.allowed_channels == ("C0123ABCDEF",)
    manifest = yaml.safe_load((ROOT / "slack" / "manifest.yaml").read_text())
    assert manifest["features"]["slash_commands"][0]["command"] == "/guardian"
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "chat:write",
        "commands",
        "files:write",
        "usergroups:read",
    }


def test_a_slack_secret_file_wins_over_the_default_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from guardian.clients.slack import secret
    from guardian.errors import ConfigError

    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-env")
    token = tmp_path / "token"
    token.write_text("xoxb-from-file\n")
    assert secret("SLACK_BOT_TOKEN", str(token), "bot_token") == "xoxb-from-file"
    assert secret("SLACK_BOT_TOKEN", None, "bot_token") == "xoxb-from-env"
    token.write_text("\n")
    with pytest.raises(ConfigError) as caught:
        secret("SLACK_BOT_TOKEN", str(token), "bot_token")
    assert caught.value.message == (
        f"slack: bot_token_file: {token} is empty; write the bot_token into it"
    )


def test_the_console_works_without_a_slack_token_and_the_daemon_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from guardian.app.wiring import notifier
    from guardian.clients.store import Store
    from guardian.errors import ConfigError
    from guardian.executor.runner import Silent

    for file in (ROOT / "config").glob("*.yaml"):
        shutil.copy(file, tmp_path / file.name)
    shutil.copy(ROOT / "examples" / "slack" / "slack.yaml", tmp_path / "slack.yaml")
    (tmp_path / "policy.yaml").write_text(
        (tmp_path / "policy.yaml").read_text().replace("../playbooks", str(ROOT / "playbooks"))
    )
    config = load_config(tmp_path)
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    assert isinstance(notifier(config, store, {}), Silent)
    assert capsys.readouterr().err == (
        "guardian: warning: no Slack messages: slack: bot_token_env: environment variable "
        "SLACK_BOT_TOKEN is not set (set it, or give bot_token_file)\n"
    )
    with pytest.raises(ConfigError):
        notifier(config, store, {}, required=True)
    store.close()


GUARD_CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "a change guard must select some SLO",
        {"guard_window": "30m"},
        "change_guard: selects no SLO; give slos (names) or labels (e.g. {tier: control-plane})",
    ),
    (
        "a change guard names only SLOs that exist",
        {"slos": ["api-read", "api-raed"]},
        "change_guard: slos[1]: no SLO is called 'api-raed' (known: api-read, dns-errors); "
        "fix the name or remove it",
    ),
    (
        "a change pair's short window is shorter than its long one",
        {"slos": ["api-read"], "windows": [{"long": "5m", "short": "10m", "factor": 2}]},
        "change_guard: windows[0]: short: must be shorter than long (got short 10m, long 5m)",
    ),
    (
        "a change pair's factor must be reachable by every SLO it watches",
        {
            "slos": ["api-read", "dns-errors"],
            "windows": [{"long": "10m", "short": "2m", "factor": 200}],
        },
        "change_guard: windows[0]: factor: 200 can never fire for SLO api-read: with objective "
        "99 the burn rate is at most 100; lower it",
    ),
    (
        "a baseline ratio below 1 would let any burn pass",
        {"slos": ["api-read"], "baseline": {"ratio": 0.5}},
        "change_guard: baseline: ratio: must be a finite number >= 1 (got 0.5)",
    ),
    (
        "the guard window is a duration",
        {"labels": {"tier": "control-plane"}, "guard_window": "half an hour"},
        "change_guard: guard_window: must be a duration like 30s, 5m, 1h or 30d "
        "(got 'half an hour')",
    ),
    (
        "a misspelt key of the change guard is an error",
        {"slos": ["api-read"], "playbok": "halt-change"},
        "change_guard: playbok: unknown key; remove it or check its spelling",
    ),
]


@pytest.mark.parametrize(
    ("section", "expected"), [c[1:] for c in GUARD_CASES], ids=[c[0] for c in GUARD_CASES]
)
def test_change_guard_errors_name_the_file_and_the_path(
    tmp_path: Path, section: dict[str, Any], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, {**copy.deepcopy(BASE), "change_guard": section})
    assert main(["check", "-c", str(path)]) == 2
    assert capsys.readouterr().err == f"guardian: {path}: {expected}\n"


def test_change_guard_defaults_reach_the_model(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["slos"][0]["labels"] = {"tier": "control-plane"}
    path = _write(tmp_path, {**doc, "change_guard": {"labels": {"tier": "control-plane"}}})
    config = load_config(path)
    assert config.change_guard is not None
    guard = config.change_guard
    assert (guard.guard_window, guard.baseline_window, guard.baseline_ratio) == (1800, 3600, 4.0)
    assert [(p.long, p.short, p.factor(1)) for p in guard.windows] == [(600, 120, 2.0)]
    assert (guard.playbook, guard.min_events, guard.source) == ("halt-change", None, str(path))
    assert [s.name for s in config.slos if guard.selects(s)] == ["api-read"]
    assert load_config(_write(tmp_path, BASE, "plain.yaml")).change_guard is None


def test_a_change_guard_given_twice_across_files(tmp_path: Path) -> None:
    _write(tmp_path, {**BASE, "change_guard": {"slos": ["api-read"]}}, "a.yaml")
    second = _write(
        tmp_path, {"version": "guardian/v1", "change_guard": {"slos": ["dns-errors"]}}, "b.yaml"
    )
    assert _error(tmp_path) == (
        f"{second}: change_guard: already given in {tmp_path / 'a.yaml'}; keep one"
    )
