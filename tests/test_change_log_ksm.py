"""The change log read from kube-state-metrics: the bundled incident's workloads and rollouts,
read back by ``guardian.evaluation.change_log.PrometheusChangeLog`` from a real Prometheus."""

from __future__ import annotations

import importlib.util
import itertools
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

import pytest

from guardian.clients.prometheus import PrometheusClient
from guardian.config.model import PrometheusSettings
from guardian.evaluation.change_log import PrometheusChangeLog
from guardian.evaluation.changes import WorkloadChange, blame, rank
from guardian.evaluation.source import QuerySource, Sample, Series
from guardian.testing.prometheus import PrometheusServer, backfill
from tests.incident_data import incident_tsdb
from tests.lab_fixture import NODES, Lab, eventually

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "examples" / "incident-2024-12-11"
GENERATOR = "examples/incident-2024-12-11/generate.py"
BEFORE_KSM = "b4908e2dc87cafcf8204d99b084ac4afb2de8420"  # the generator before its KSM series


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("incident_generate", HERE / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _generate(script: Path, out: Path, *args: str) -> Path:
    """The generator's file (hundreds of MB: read it line by line, never whole, so this
    process stays small and the processes later tests fork do not inherit its size)."""
    cmd = [sys.executable, str(script), "--out", str(out), *args]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="ascii") as text:
        for line in text:
            yield line.rstrip("\n")


def _is_ksm(line: str) -> bool:
    return line.startswith(("kube_", "# HELP kube_", "# TYPE kube_"))


@pytest.mark.slow
def test_the_api_server_and_coredns_series_are_unchanged(tmp_path: Path) -> None:
    shown = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{BEFORE_KSM}:{GENERATOR}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if shown.returncode != 0:
        pytest.skip(f"git history without {BEFORE_KSM[:7]}: {shown.stderr.strip()}")
    old_script = tmp_path / "generate_before.py"
    old_script.write_text(shown.stdout, encoding="utf-8")
    args = ("--days-before", "1", "--interval", "120")
    old = _generate(old_script, tmp_path / "old.om", *args)
    new = _generate(HERE / "generate.py", tmp_path / "new.om", *args)
    assert not any(_is_ksm(line) for line in _lines(old))
    assert sum(1 for line in _lines(new) if _is_ksm(line)) > 1000, "the new file has KSM series"
    others = (line for line in _lines(new) if not _is_ksm(line))
    for index, (then, now) in enumerate(itertools.zip_longest(_lines(old), others)):
        assert now == then, f"line {index + 1} of the API-server and CoreDNS series changed"


def test_the_telemetry_daemonset_rolls_out_along_the_curve_that_drives_the_overload() -> None:
    generate = _generator()
    timeline = generate.build_timeline(0, 60)
    stamps = [int(t) for t in timeline.timestamps]
    for cluster in generate.CLUSTERS:
        series = dict(generate.telemetry_series(timeline, cluster))
        desired = series["kube_daemonset_status_desired_number_scheduled"]
        updated = series["kube_daemonset_status_updated_number_scheduled"]
        shown = stamps[desired.first : desired.first + len(desired.values)]
        share = {t: int(u) / cluster.nodes for t, u in zip(shown, updated.values, strict=True)}
        created = generate.pst_unix(generate.INCIDENT_DAY, "15:12")
        assert shown[0] == created and series["kube_daemonset_created"].values[0] == str(created)
        assert desired.values[0] == str(cluster.nodes)
        at = {c: generate.pst_unix(generate.INCIDENT_DAY, c) for c in ("15:13", "15:25", "15:45")}
        assert share[at["15:13"]] < 0.02, "ROLLOUT: 15:12=0 15:16=0.08 15:25=0.35 15:40=1"
        assert 0.3 < share[at["15:25"]] < 0.4 and share[at["15:45"]] > 0.95
        assert desired.values[-1] == updated.values[-1] == "0", "the agents are gone at the end"
        removed = generate.pst_unix(generate.INCIDENT_DAY, cluster.agents_removed)
        assert removed < shown[-1] < removed + 25 * 60


def test_a_days_rollouts_do_not_depend_on_the_files_length() -> None:
    generate = _generator()
    short = generate.ksm_rollouts(generate.build_timeline(0, 60), 7)
    long = generate.ksm_rollouts(generate.build_timeline(2, 60), 7)
    day = generate.INCIDENT_DAY.timestamp()
    for cluster, rollouts in short.items():
        assert rollouts, cluster
        assert rollouts == [r for r in long[cluster] if r.start >= day]
        assert len(long[cluster]) > 2 * len(rollouts), "two normal days before it"


# --- the reader, on the bundled data in a real Prometheus --------------------------------

PST = timezone(timedelta(hours=-8))
EAST, WEST = 'cluster="prod-east-1"', 'cluster="prod-west-2"'
TELEMETRY = ("DaemonSet", "observability", "telemetry-agent")
REDIS = ("StatefulSet", "data", "redis")  # the incident day's rollout in flight at 15:12


def _pst(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 12, day, hour, minute, tzinfo=PST)


class CountingSource:
    """A ``QuerySource`` that counts the queries it passes on."""

    def __init__(self, inner: QuerySource) -> None:
        self.inner = inner
        self.queries: list[str] = []

    def instant(self, promql: str, at: datetime | None = None) -> Sequence[Sample]:
        self.queries.append(promql)
        return self.inner.instant(promql, at)

    def range(self, promql: str, start: datetime, end: datetime, step: int) -> Sequence[Series]:
        self.queries.append(promql)
        return self.inner.range(promql, start, end, step)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusClient]:
    """The bundled data (2024-12-09 .. 12-11, the blocks ``make demo`` caches) in a real
    Prometheus."""
    with PrometheusServer(incident_tsdb(tmp_path_factory.mktemp("ksm") / "tsdb")) as server:
        yield PrometheusClient(PrometheusSettings(url=server.url, timeout=30))


def _ident(change: WorkloadChange) -> tuple[str, str, str]:
    return (change.kind, change.namespace, change.name)


KINDS = {"deployment": "Deployment", "daemonset": "DaemonSet", "statefulset": "StatefulSet"}


@pytest.mark.prometheus
@pytest.mark.slow
def test_the_telemetry_daemonset_is_a_creation_at_1512_rolling_over_the_nodes(
    prometheus: PrometheusClient,
) -> None:
    generate = _generator()
    log = PrometheusChangeLog(prometheus, selector=EAST)
    early = [c for c in log.changes(_pst(11, 15), _pst(11, 15, 20)) if _ident(c) == TELEMETRY]
    later = [c for c in log.changes(_pst(11, 15), _pst(11, 15, 30)) if _ident(c) == TELEMETRY]
    assert len(early) == len(later) == 1
    agent, grown = early[0], later[0]
    assert agent.created and agent.started == _pst(11, 15, 12)
    assert agent.cluster == "prod-east-1" and agent.generation == 1
    assert agent.desired == generate.CLUSTERS[0].nodes == 5012
    assert 0 < agent.updated < grown.updated < agent.desired, "updated rises over the nodes"
    assert agent.in_flight
    assert agent.service_account == "" and agent.previous_revision == ""
    assert not [c for c in log.changes(_pst(11, 14), _pst(11, 15, 11)) if _ident(c) == TELEMETRY]


@pytest.mark.prometheus
@pytest.mark.slow
def test_at_1530_the_incident_days_ordinary_rollouts_are_there_with_their_start(
    prometheus: PrometheusClient,
) -> None:
    generate = _generator()
    plan = generate.ksm_rollouts(generate.build_timeline(1, 60), 7)
    changes = PrometheusChangeLog(prometheus).changes(_pst(11, 0), _pst(11, 15, 30))
    for cluster in ("prod-east-1", "prod-west-2"):
        expected = {
            (KINDS[r.workload.kind], r.workload.namespace, r.workload.name): r.start
            for r in plan[cluster]
            if _pst(11, 0).timestamp() <= r.start
        }
        mine = [c for c in changes if c.cluster == cluster]
        found = {_ident(c): int(c.started.timestamp()) for c in mine if not c.created}
        assert len(expected) >= 5 and found == expected
        assert [_ident(c) for c in mine if c.created] == [TELEMETRY]
    at_burn = PrometheusChangeLog(prometheus).changes(_pst(11, 0), _pst(11, 15, 16))
    for cluster in ("prod-east-1", "prod-west-2"):
        mine = [c for c in at_burn if c.cluster == cluster]
        redis = next(c for c in mine if _ident(c) == REDIS)
        assert redis.started < _pst(11, 15, 12) and 0 < redis.updated < redis.desired == 6
        assert [_ident(c) for c in mine if c.in_flight] == [REDIS, TELEMETRY]
        ranked = rank(mine, _pst(11, 15, 16))
        assert _ident(ranked[0]) == TELEMETRY, "nearest to the burn's start, before it"
        blamed = blame(mine, _pst(11, 15, 16))
        assert blamed is not None and _ident(blamed) == TELEMETRY


@pytest.mark.prometheus
@pytest.mark.slow
def test_a_normal_days_deployment_update_is_a_new_generation_within_one_step(
    prometheus: PrometheusClient,
) -> None:
    generate = _generator()
    plan = generate.ksm_rollouts(generate.build_timeline(1, 60), 7)
    rollout = next(
        r
        for r in plan["prod-west-2"]
        if r.workload.kind == "deployment" and r.start < _pst(11, 0).timestamp()
    )
    workload = ("Deployment", rollout.workload.namespace, rollout.workload.name)
    start = datetime.fromtimestamp(rollout.start, PST)
    log = PrometheusChangeLog(prometheus, selector=WEST)
    middle = start + timedelta(seconds=rollout.seconds / 2)
    done = start + timedelta(seconds=rollout.seconds + 300)
    since = start - timedelta(minutes=30)
    [rolling] = [c for c in log.changes(since, middle) if _ident(c) == workload]
    [finished] = [c for c in log.changes(since, done) if _ident(c) == workload]
    for change in (rolling, finished):
        assert not change.created and change.cluster == "prod-west-2"
        assert abs((change.started - start).total_seconds()) <= 60
    [before] = prometheus.instant(
        f'kube_deployment_metadata_generation{{{WEST},deployment="{workload[2]}"}}',
        at=start - timedelta(minutes=1),
    )
    assert finished.generation == rolling.generation == int(before.value) + 1
    assert rolling.in_flight and rolling.updated < rolling.desired == rollout.workload.replicas
    assert not finished.in_flight and finished.updated == finished.desired
    later = log.changes(done, done + timedelta(minutes=30))
    assert workload not in {_ident(c) for c in later}, "an old generation is not a change"


@pytest.mark.prometheus
@pytest.mark.slow
def test_queries_are_bounded_per_metric_and_the_selector_narrows_them(
    prometheus: PrometheusClient,
) -> None:
    counting = CountingSource(prometheus)
    assert PrometheusChangeLog(counting, selector=EAST).changes(_pst(11, 2), _pst(11, 3)) == []
    assert len(counting.queries) == 6, "a quiet hour: the creations and generations per kind"
    assert all(EAST in q for q in counting.queries)
    counting.queries.clear()
    whole = PrometheusChangeLog(counting).changes(_pst(10, 0), _pst(11, 15, 30))
    assert len(counting.queries) <= 15 and {c.cluster for c in whole} == {
        "prod-east-1",
        "prod-west-2",
    }
    west = PrometheusChangeLog(prometheus, selector="{" + WEST + "}").changes(
        _pst(10, 0), _pst(11, 15, 30)
    )
    assert west and {c.cluster for c in west} == {"prod-west-2"}
    assert len(west) == len([c for c in whole if c.cluster == "prod-west-2"])


@pytest.mark.prometheus
@pytest.mark.slow
def test_a_workload_deleted_by_the_end_of_the_range_is_not_listed(
    prometheus: PrometheusClient,
) -> None:
    changes = PrometheusChangeLog(prometheus).changes(_pst(11, 15), _pst(11, 17))
    agents = {c.cluster for c in changes if _ident(c) == TELEMETRY}
    assert agents == {"prod-west-2"}, "east's agents were gone by 16:48, west's by ~17:25"


@pytest.mark.parametrize("selector", ['kube_deployment_created{cluster="a"}', "prod-east-1"])
def test_a_selector_that_is_not_label_matchers_is_refused_with_the_fix(selector: str) -> None:
    with pytest.raises(ValueError, match=r'e\.g\. cluster="prod-east-1"'):
        PrometheusChangeLog(CountingSource(None), selector=selector)  # type: ignore[arg-type]


# --- the reader on the lab's kube-state-metrics ---------------------------------------------


@pytest.mark.lab
def test_a_daemonset_created_and_updated_through_the_api_is_read_back_from_the_labs_ksm(
    lab: Lab,
) -> None:
    client = PrometheusClient(PrometheusSettings(url=f"http://127.0.0.1:{lab.ports['prometheus']}"))
    log = PrometheusChangeLog(client, selector='cluster="lab",namespace="changelog"', step=5)
    reader = ("DaemonSet", "changelog", "reader")
    lab.api("POST", "/api/v1/namespaces", json={"metadata": {"name": "changelog"}})
    daemonset = {
        "metadata": {"name": "reader"},
        "spec": {
            "selector": {"matchLabels": {"app": "reader"}},
            "template": {
                "metadata": {"labels": {"app": "reader"}},
                "spec": {"containers": [{"name": "r", "image": "registry.invalid/reader:1"}]},
            },
        },
    }
    before = datetime.now(UTC).replace(microsecond=0)
    assert lab.api("POST", "/apis/apps/v1/namespaces/changelog/daemonsets", json=daemonset).ok
    posted = datetime.now(UTC)
    seen: list[WorkloadChange] = []

    def read(since: datetime, created: bool) -> bool:
        now = datetime.now(UTC)
        seen[:] = [c for c in log.changes(since, now) if _ident(c) == reader]
        return len(seen) == 1 and seen[0].created is created and seen[0].desired == NODES

    eventually(lambda: read(before - timedelta(minutes=1), True), 90, "the creation, from KSM")
    assert before <= seen[0].started <= posted and seen[0].generation == 1
    assert seen[0].cluster == "lab" and seen[0].service_account == ""

    patch = {"spec": {"template": {"metadata": {"annotations": {"rev": "2"}}}}}
    patched = datetime.now(UTC)
    assert lab.api(
        "PATCH",
        "/apis/apps/v1/namespaces/changelog/daemonsets/reader",
        headers={"Content-Type": "application/merge-patch+json"},
        json=patch,
    ).ok
    eventually(lambda: read(patched, False), 90, "the new generation, from KSM")
    assert seen[0].generation == 2
    assert patched - timedelta(seconds=5) <= seen[0].started <= datetime.now(UTC)


# --- exact data: a generation that lasted less than a step --------------------------------

BASE = 1_700_000_040  # a multiple of 60: the reader's steps fall on it


def _gauges(points: dict[str, dict[int, int]]) -> str:
    """OpenMetrics gauges: {``name{labels}``: {offset from BASE: value}}."""
    families: dict[str, list[str]] = {}
    for series, values in points.items():
        name = series.split("{")[0]
        families.setdefault(name, []).extend(
            f"{series} {v} {BASE + t}" for t, v in sorted(values.items())
        )
    body = [line for name, lines in families.items() for line in [f"# TYPE {name} gauge", *lines]]
    return "\n".join([*body, "# EOF", ""])


@pytest.mark.prometheus
def test_a_new_generation_right_after_a_workloads_first_one_is_seen(tmp_path: Path) -> None:
    every = range(0, 1501, 15)
    names = ("late", "early", "steady")
    late, early, steady = (f'namespace="edge",deployment="{n}"' for n in names)
    shown = [t for t in every if t >= 65]
    points = {
        # "late" is created at +60, before ``since`` (+70), its series appear at +65 and it
        # gets generation 2 at +100: one step (60 s) before the first step after ``since``
        # (+120) it had no series yet.
        f"kube_deployment_created{{{late}}}": {t: BASE + 60 for t in shown},
        f"kube_deployment_metadata_generation{{{late}}}": {t: 1 if t < 100 else 2 for t in shown},
        f"kube_deployment_spec_replicas{{{late}}}": {t: 3 for t in shown},
        # a second kube-state-metrics replica scrapes "late" too: still one change
        f'kube_deployment_metadata_generation{{{late},instance="ksm-2"}}': {
            t: 1 if t < 100 else 2 for t in shown
        },
        # "early" got generation 2 at +10, more than a step before ``since``: not in the range.
        f"kube_deployment_created{{{early}}}": {t: BASE - 900 for t in every},
        f"kube_deployment_metadata_generation{{{early}}}": {t: 1 if t < 10 else 2 for t in every},
        f"kube_deployment_spec_replicas{{{early}}}": {t: 3 for t in every},
        f"kube_deployment_created{{{steady}}}": {t: BASE - 900 for t in every},
        f"kube_deployment_metadata_generation{{{steady}}}": {t: 5 for t in every},
        f"kube_deployment_spec_replicas{{{steady}}}": {t: 3 for t in every},
    }
    (tmp_path / "edge.om").write_text(_gauges(points), encoding="ascii")
    backfill(tmp_path / "edge.om", tmp_path / "tsdb")
    with PrometheusServer(tmp_path / "tsdb") as server:
        source = PrometheusClient(PrometheusSettings(url=server.url))
        moment = datetime.fromtimestamp(BASE, UTC)
        since, until = moment + timedelta(seconds=70), moment + timedelta(seconds=1200)
        changes = PrometheusChangeLog(source).changes(since, until)
    assert [(c.name, c.created, c.generation) for c in changes] == [("late", False, 2)]
    assert 0 <= (changes[0].started - (moment + timedelta(seconds=100))).total_seconds() <= 60
