"""Dangerous targets are refused: protected subjects for throttle-client, protected nodes and
a share per run for shed-nodes, the blast radius for ``guardian act``. No lab needed: refusals
happen before any request (the client points at a closed port and must send nothing), and
node choices are computed from listed Node objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from guardian.actions import CATALOGUE, Guardrails, Plan, Refused, protected
from guardian.actions.base import Change
from guardian.actions.protected import Identity
from guardian.actions.shed_nodes import ShedNodesParams, plan_nodes
from guardian.actions.throttle_client import ThrottleClientParams, refusal
from guardian.app.cli import main
from guardian.clients.kube import Kube
from guardian.clients.store import Store
from guardian.config import load_config
from guardian.errors import ConfigErrors
from guardian.executor.runner import Runner
from guardian.playbooks import load_playbooks
from tests.lab_fixture import ROOT

GUARDIAN = Identity(
    "system:serviceaccount:guardian:guardian",
    ("system:serviceaccounts", "system:serviceaccounts:guardian", "system:authenticated"),
)
EXTRA = ("user:alice", "group:sre-*", "serviceaccount:monitoring/prometheus")


def _protected(subject: str, reason: str) -> str:
    return (
        f"throttle-client: subject {subject} is protected ({reason}); guardian never throttles it"
    )


def _params(subject: str) -> ThrottleClientParams:
    """``group NAME``, ``user NAME`` or ``serviceaccount NS/NAME``."""
    kind, _, name = subject.partition(" ")
    if kind == "serviceaccount":
        namespace, _, account = name.partition("/")
        return ThrottleClientParams(subject="serviceaccount", namespace=namespace, name=account)
    return ThrottleClientParams.model_validate({"subject": kind, "name": name})


SUBJECTS: list[tuple[str, str | None]] = [
    ("group system:nodes", "kubelets"),
    ("user system:node:kwok-node-1", "a kubelet"),
    ("user system:kube-scheduler", "a control-plane component"),
    ("user system:kube-controller-manager", "a control-plane component"),
    ("user system:kube-proxy", "a control-plane component"),
    ("group system:kube-controller-manager", "control-plane components"),
    ("user system:apiserver", "the API server itself"),
    ("group system:masters", "cluster administrators"),
    ("group system:authenticated", "every authenticated client"),
    ("group system:unauthenticated", "every anonymous client"),
    ("user system:anonymous", "anonymous clients"),
    ("group system:serviceaccounts", "every service account"),
    ("group system:serviceaccounts:kube-system", "kube-system service accounts"),
    ("serviceaccount kube-system/coredns", "a kube-system service account"),
    ("serviceaccount kube-system/*", "a kube-system service account"),
    ("user system:serviceaccount:kube-system:coredns", "a kube-system service account"),
    ("group system:bootstrappers", "a name Kubernetes reserves (system:)"),
    ("user *", "every user, the protected ones included"),
    ("group *", "every group, the protected ones included"),
    ("serviceaccount guardian/guardian", "guardian's own identity"),
    ("serviceaccount guardian/*", "guardian's own identity"),
    ("user system:serviceaccount:guardian:guardian", "guardian's own identity"),
    ("group system:serviceaccounts:guardian", "guardian itself is in it"),
    ("user alice", "listed in policy.protected_subjects as user:alice"),
    ("group sre-oncall", "listed in policy.protected_subjects as group:sre-*"),
    (
        "serviceaccount monitoring/prometheus",
        "listed in policy.protected_subjects as serviceaccount:monitoring/prometheus",
    ),
    # still allowed: a guard that refuses everything fails here
    ("serviceaccount telemetry/telemetry-agent", None),
    ("serviceaccount telemetry/*", None),
    ("user telemetry-agent", None),
    ("user system:serviceaccount:telemetry:telemetry-agent", None),
    ("group system:serviceaccounts:telemetry", None),
    ("group noisy-tenants", None),
    ("user alice2", None),
    ("serviceaccount monitoring/grafana", None),
]


@pytest.mark.parametrize(("subject", "reason"), SUBJECTS)
def test_protected_subjects_are_refused_with_their_reason(subject: str, reason: str | None) -> None:
    expected = _protected(subject, reason) if reason else None
    assert refusal(_params(subject), GUARDIAN, EXTRA) == expected


def test_configuration_adds_to_the_built_in_list_and_cannot_empty_it(tmp_path: Path) -> None:
    nodes = _params("group system:nodes")
    coredns = _params("serviceaccount kube-system/coredns")
    assert refusal(_params("user alice"), None, ()) is None
    assert refusal(_params("user alice"), None, ("user:alice",)) is not None
    # an empty list, or one that re-lists a built-in subject, leaves the built-ins in force
    for listed in ([], ["group:system:nodes", "user:alice"], ["serviceaccount:monitoring/*"]):
        config = load_config(_config(tmp_path / "guardian.yaml", {"protected_subjects": listed}))
        extra = config.policy.protected_subjects
        assert refusal(nodes, None, extra) == _protected("group system:nodes", "kubelets")
        assert refusal(coredns, None, extra) is not None, listed
        assert refusal(_params("group noisy-tenants"), None, extra) is None, listed


@pytest.fixture
def nowhere() -> Kube:
    """A real client for a closed port: a refusal must come before any request."""
    kube = Kube.from_token("https://127.0.0.1:9", "unused", "/nonexistent/ca.crt")
    kube.total_timeout = 0.5
    return kube


@pytest.mark.parametrize(
    ("subject", "reason"),
    [(s, r) for s, r in SUBJECTS if r and "guardian" not in r and "policy" not in r],
)
def test_the_plan_refuses_before_sending_anything(nowhere: Kube, subject: str, reason: str) -> None:
    with pytest.raises(Refused) as refused:
        CATALOGUE["throttle-client"].plan(nowhere, _params(subject))
    assert refused.value.message == _protected(subject, reason)
    assert refused.value.exit_code == 2
    assert nowhere.requests == 0


def test_the_plan_refuses_a_configured_subject(nowhere: Kube) -> None:
    guardrails = Guardrails(protected_subjects=EXTRA)
    with pytest.raises(Refused, match=r"as group:sre-\*\); guardian never"):
        CATALOGUE["throttle-client"].plan(nowhere, _params("group sre-oncall"), guardrails)
    assert nowhere.requests == 0


def test_an_unknown_own_identity_refuses_every_subject(nowhere: Kube) -> None:
    """guardian cannot tell an ordinary subject from itself while its SelfSubjectReview
    fails, so it throttles no one (the same subject plans once the identity is known)."""
    tenants = _params("group noisy-tenants")
    with pytest.raises(Refused) as refused:
        CATALOGUE["throttle-client"].plan(nowhere, tenants)
    assert refused.value.message.startswith(
        "throttle-client: guardian's own identity is unknown (SelfSubjectReview: "
    )
    assert refused.value.message.endswith(
        "guardian throttles no one it cannot tell apart from itself: "
        "let it create selfsubjectreviews (authentication.k8s.io)"
    )
    assert nowhere.requests >= 1  # the review was asked (and retried), no change was sent


def test_a_known_identity_is_remembered_per_client(nowhere: Kube) -> None:
    """Once a client's identity is known, planning a throttle sends nothing more to an API
    server that may be drowning (here: one that cannot be reached at all)."""
    protected._known[nowhere] = GUARDIAN
    plan = CATALOGUE["throttle-client"].plan(nowhere, _params("group noisy-tenants"))
    assert isinstance(plan, Plan) and len(plan.changes) == 2
    assert nowhere.requests == 0
    with pytest.raises(Refused, match="guardian's own identity"):
        CATALOGUE["throttle-client"].plan(nowhere, _params(f"user {GUARDIAN.username}"))
    other = Kube.from_token("https://127.0.0.1:9", "unused", "/nonexistent/ca.crt")
    other.total_timeout = 0.5
    with pytest.raises(Refused, match="identity is unknown"):
        CATALOGUE["throttle-client"].plan(other, _params("group noisy-tenants"))


def _kubeconfig(path: Path) -> Path:
    """A kubeconfig for a closed port: whatever gets that far fails to connect."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "unused"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return path


def _config(path: Path, policy: dict[str, Any]) -> Path:
    doc = {
        "version": "guardian/v1",
        "prometheus": {"url": "http://127.0.0.1:9"},
        "policy": policy,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("dry_run", [True, False])
def test_guardian_act_refuses_a_protected_subject_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dry_run: bool
) -> None:
    kubeconfig = _kubeconfig(tmp_path / "kubeconfig")
    args = ["act", "throttle-client", "--kubeconfig", str(kubeconfig)]
    args += ["--dry-run"] if dry_run else []
    code = main([*args, "--set", "subject=group", "--set", "name=system:nodes"])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "guardian: " + _protected("group system:nodes", "kubelets")
    ]
    config = _config(tmp_path / "guardian.yaml", {"protected_subjects": ["user:alice"]})
    code = main([*args, "-c", str(config), "--set", "subject=user", "--set", "name=alice"])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "guardian: " + _protected("user alice", "listed in policy.protected_subjects as user:alice")
    ]


def test_a_malformed_protected_subject_is_a_config_error(tmp_path: Path) -> None:
    config = _config(tmp_path / "guardian.yaml", {"protected_subjects": ["user:ok", "alice"]})
    with pytest.raises(ConfigErrors) as errors:
        load_config(config)
    assert errors.value.message == (
        f"{config}: policy: protected_subjects: entries must be user:NAME, group:NAME or "
        "serviceaccount:NAMESPACE/NAME (got 'alice')"
    )


class _NoSignals:
    """The playbook step is refused at plan time; signals are never read."""

    def short_burn(self, slo: str) -> float | None:
        raise AssertionError(slo)

    def holds(self, promql: str) -> bool:
        raise AssertionError(promql)


def test_throttle_offender_refuses_a_kube_system_rollout(nowhere: Kube, tmp_path: Path) -> None:
    """The offender is the newest rollout's service account: it may well be in kube-system."""
    shipped = (ROOT / "playbooks" / "throttle-offender.yaml").read_text()
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "shipped.yaml").write_text(shipped)
    auto = shipped.replace("name: throttle-offender", "name: throttle-offender-auto")
    (tmp_path / "books" / "auto.yaml").write_text(
        auto.replace("approval: required", "approval: auto")
    )
    params = {name: action.params for name, action in CATALOGUE.items()}
    books = load_playbooks([tmp_path / "books"], params)
    store = Store.open(f"sqlite:///{tmp_path / 'g.db'}")
    runner = Runner(store, books, lambda context: nowhere, _NoSignals())
    context = {"offender": {"namespace": "kube-system", "name": "coredns"}, "params": {}}
    message = _protected("serviceaccount kube-system/coredns", "a kube-system service account")

    [check] = runner.dry_run("throttle-offender", context)
    assert (check.plan, check.problems) == (None, (message,))

    for playbook in ("throttle-offender", "throttle-offender-auto"):
        ex = runner.propose(playbook, context, "alice", "console")
        done = runner.advance(ex.id)
        assert (done.state, done.message) == ("failed", f"throttle: plan: {message}")
        assert store.applied_phases(ex.id) == []
        kinds = [r.kind for r in store.history(ex.id)]
        assert "applied" not in kinds and "awaiting_approval" not in kinds, (
            "nobody is asked to approve a protected target"
        )
    assert nowhere.requests == 0

    runner.protected_subjects = ("serviceaccount:monitoring/*",)  # policy.protected_subjects
    context = {"offender": {"namespace": "monitoring", "name": "prometheus"}, "params": {}}
    [check] = runner.dry_run("throttle-offender", context)
    assert check.problems == (
        _protected(
            "serviceaccount monitoring/prometheus",
            "listed in policy.protected_subjects as serviceaccount:monitoring/*",
        ),
    )


def test_a_playbook_dry_run_keeps_the_blast_radius(nowhere: Kube, tmp_path: Path) -> None:
    """The dry run refuses what the run would refuse: more changes than policy.max_changes."""
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "throttle.yaml").write_text(
        "version: guardian/v1\nname: throttle-noisy\ntrigger: {labels: {tier: nowhere}}\n"
        "steps:\n  - name: throttle\n    action: throttle-client\n"
        "    params: {subject: group, name: noisy}\n"
    )
    params = {name: action.params for name, action in CATALOGUE.items()}
    books = load_playbooks([tmp_path / "books"], params)
    store = Store.open(f"sqlite:///{tmp_path / 'g.db'}")
    runner = Runner(store, books, lambda context: nowhere, _NoSignals(), max_changes=1)
    protected._known[nowhere] = GUARDIAN  # as found by an earlier review on this client
    [check] = runner.dry_run("throttle-noisy", {"params": {}})
    assert check.problems == (
        "throttle-client: blast radius: 2 changes would exceed the maximum of 1 "
        "(policy.max_changes); ask for fewer",
    )


# shed-nodes -----------------------------------------------------------------------------


def _node(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, **(labels or {})},
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": spec,
    }


WORKERS = [_node(f"worker-{i:02}", {"pool": "a" if i < 10 else "b"}) for i in range(20)]
CONTROL_PLANE = [
    _node("cp-label", {"node-role.kubernetes.io/control-plane": ""}),
    _node("cp-master", {"node-role.kubernetes.io/master": ""}),
    _node(
        "cp-taint",
        taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
    ),
]
CLUSTER = [*CONTROL_PLANE, *WORKERS, _node("cordoned", unschedulable=True)]


def _shed(candidates: list[dict[str, Any]] | None = None, **params: Any) -> Plan:
    chosen = CLUSTER if candidates is None else candidates
    return plan_nodes(CLUSTER, chosen, {}, ShedNodesParams(order="name", **params))


def _touched(plan: Plan) -> list[str]:
    return sorted({c.path.rsplit("/", 1)[-1] for c in plan.changes})


def test_everything_asked_with_no_floor_sheds_a_tenth_and_never_the_control_plane() -> None:
    plan = _shed(percent=100, min_nodes=0)
    assert _touched(plan) == ["worker-00", "worker-01"]
    assert plan.notes == (
        "20 schedulable candidates; shedding 2 (asked 20, floor 0, at most 2 per run) "
        "in batches of 2",
        "share per run holds: one run sheds at most 10% of 20 schedulable worker nodes "
        "(2; max_share_per_run 0.1); 18 fewer than asked",
        "control plane is never shed: left out 3 node(s): cp-label, cp-master, cp-taint",
    )
    deleted = _shed(percent=100, min_nodes=0, mode="delete")
    assert [c.op for c in deleted.changes] == ["delete", "delete"]
    assert _touched(deleted) == ["worker-00", "worker-01"]


def test_a_larger_share_per_run_is_honoured_up_to_half() -> None:
    plan = _shed(percent=100, min_nodes=0, max_share_per_run=0.3)
    assert len(_touched(plan)) == 6
    assert not set(_touched(plan)) & {"cp-label", "cp-master", "cp-taint"}
    half = _shed(percent=100, min_nodes=0, max_share_per_run=0.5)
    assert len(_touched(half)) == 10


def test_the_floor_holds_before_the_share() -> None:
    plan = _shed(percent=100, min_nodes=17, max_share_per_run=0.5)
    assert len(_touched(plan)) == 3
    assert plan.notes[1] == "floor holds: 17 fewer than asked"
    assert len(plan.notes) == 3, "the share (10 of 20) did not bind"


def test_a_selected_pool_is_capped_by_the_whole_cluster_s_share() -> None:
    pool = [n for n in CLUSTER if n["metadata"]["labels"].get("pool") == "b"]
    plan = _shed(pool, selector="pool=b", count=4, min_nodes=0)
    assert _touched(plan) == ["worker-10", "worker-11"]
    assert plan.notes[0].startswith("10 schedulable candidates; shedding 2 (asked 4,")
    emptied = _shed(pool, selector="pool=b", percent=100, min_nodes=0, max_share_per_run=0.5)
    assert len(_touched(emptied)) == 10, "half the cluster: the whole pool"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ["max_share_per_run=0.9"],
            "guardian: --set max_share_per_run: must be above 0 and at most 0.5: one run never "
            "sheds more than half of the worker nodes (got 0.9)",
        ),
        (
            ["max_share_per_run=0"],
            "guardian: --set max_share_per_run: must be above 0 and at most 0.5: one run never "
            "sheds more than half of the worker nodes (got 0.0)",
        ),
    ],
)
def test_guardian_act_refuses_a_share_out_of_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sets: list[str], message: str
) -> None:
    kubeconfig = _kubeconfig(tmp_path / "kubeconfig")
    args = ["act", "shed-nodes", "--kubeconfig", str(kubeconfig), "--dry-run"]
    args += ["--set", "percent=100", "--set", "min_nodes=0"]
    assert main([*args, *(f for s in sets for f in ("--set", s))]) == 2
    assert capsys.readouterr().err.splitlines() == [message]


def test_guardian_act_keeps_the_blast_radius_of_playbook_runs() -> None:
    changes = tuple(Change("patch", f"/api/v1/nodes/n{i}", {}, f"cordon n{i}") for i in range(201))
    big = Plan("shed-nodes", "all nodes", changes)
    with pytest.raises(Refused) as refused:
        Guardrails().check(big)
    assert refused.value.message == (
        "shed-nodes: blast radius: 201 changes would exceed the maximum of 200 "
        "(policy.max_changes); ask for fewer"
    )
    Guardrails(max_changes=201).check(big)
    with pytest.raises(Refused):
        Guardrails(max_changes=3).check(Plan("shed-nodes", "all nodes", changes[:4]))
