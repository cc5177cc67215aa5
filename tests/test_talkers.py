"""The offender from APF's own data, without a lab: a dump recorded from the lab under ``lab
load`` (the telemetry agents' LISTs queued in workload-low, a kubelet identity flooding LISTs
of pods in the system level, the admin reading the dump itself, exempt) parsed and ranked;
throttle-client's check against the top talkers (refusals come before any request: the client
points at a closed port and must send nothing); and the approval message's top talkers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from guardian.actions import CATALOGUE, Refused
from guardian.actions.protected import Identity, covers
from guardian.actions.throttle_client import ThrottleClientParams
from guardian.actions.throttle_talkers import talker_refusal
from guardian.approval.blocks import render
from guardian.clients.kube import Kube
from guardian.clients.store import Store
from guardian.errors import DataUnavailable, TransientKubernetesError
from guardian.planning.talkers import FlowLoad, parse_dump, rank, talkers_context, top_talkers
from guardian.playbooks import load_playbooks
from guardian.testing.slack import block_problems

ROOT = Path(__file__).resolve().parent.parent
AGENT = "system:serviceaccount:telemetry:telemetry-agent"
NODE = "system:node:kwok-node-0"

# Recorded from the lab (Kubernetes v1.34.4) with `lab load` running and 15 threads listing
# pods as the impersonated kubelet system:node:kwok-node-0: GET
# /debug/api_priority_and_fairness/dump_requests?includeRequestDetails=1, verbatim but for
# the rows left out (the recording held 300 queued agent requests, 14 of the kubelet).
HEADER = "PriorityLevelName, FlowSchemaName,   QueueIndex, RequestIndexInQueue, FlowDistingsher,                                 ArriveTime,                     InitialSeats, FinalSeats, AdditionalLatency, StartTime,                      UserName,                                        Verb,   APIPath,                                                                     Namespace,       Name,         APIVersion,             Resource, SubResource"  # noqa: E501
AGENT_QUEUED = "workload-low,      service-accounts, 25,         0,                   system:serviceaccount:telemetry:telemetry-agent, 2026-12-01T15:19:16.030389989Z, 1,            0,          0s,                0001-01-01T00:00:00Z,           system:serviceaccount:telemetry:telemetry-agent, list,   /api/v1/nodes,                                                               ,                ,             v1,                     nodes,    "  # noqa: E501
AGENT_QUEUED_2 = "workload-low,      service-accounts, 25,         1,                   system:serviceaccount:telemetry:telemetry-agent, 2026-12-01T15:19:16.057610582Z, 1,            0,          0s,                0001-01-01T00:00:00Z,           system:serviceaccount:telemetry:telemetry-agent, list,   /api/v1/pods,                                                                ,                ,             v1,                     pods,     "  # noqa: E501
AGENT_EXECUTING = "workload-low,      service-accounts, 37,         -1,                  system:serviceaccount:telemetry:telemetry-agent, 2026-12-01T15:19:15.806484321Z, 1,            0,          0s,                2026-12-01T15:19:30.021256079Z, system:serviceaccount:telemetry:telemetry-agent, list,   /api/v1/nodes,                                                               ,                ,             v1,                     nodes,    "  # noqa: E501
NODE_QUEUED = "system,            system-nodes,     1,          0,                   system:node:kwok-node-0,                         2026-12-01T15:19:23.290724969Z, 1,            0,          0s,                0001-01-01T00:00:00Z,           system:node:kwok-node-0,                         list,   /api/v1/pods,                                                                ,                ,             v1,                     pods,     "  # noqa: E501
NODE_QUEUED_2 = "system,            system-nodes,     1,          1,                   system:node:kwok-node-0,                         2026-12-01T15:19:27.288906469Z, 1,            0,          0s,                0001-01-01T00:00:00Z,           system:node:kwok-node-0,                         list,   /api/v1/pods,                                                                ,                ,             v1,                     pods,     "  # noqa: E501
NODE_EXECUTING = "system,            system-nodes,     1,          -1,                  system:node:kwok-node-0,                         2026-12-01T15:19:21.280022535Z, 1,            0,          0s,                2026-12-01T15:19:29.885816085Z, system:node:kwok-node-0,                         list,   /api/v1/pods,                                                                ,                ,             v1,                     pods,     "  # noqa: E501
ADMIN_EXECUTING = "exempt,            exempt,           -1,         -1,                  ,                                                2026-12-01T15:19:30.036196439Z, 1,            0,          0s,                2026-12-01T15:19:30.036196439Z, admin,                                           get,    /debug/api_priority_and_fairness/dump_requests,                              ,                ,             ,                       ,         "  # noqa: E501
RECORDED = "\n".join(
    [
        *(HEADER, AGENT_QUEUED, AGENT_QUEUED_2, AGENT_EXECUTING),
        *(NODE_QUEUED, NODE_QUEUED_2, NODE_EXECUTING, ADMIN_EXECUTING, ""),
    ]
)


def _dump(**rows: int) -> str:
    """A dump holding ``rows[name]`` copies of each recorded row (``agent=3, node=5``)."""
    by_name = {"agent": AGENT_QUEUED, "node": NODE_QUEUED, "admin": ADMIN_EXECUTING}
    return "\n".join([HEADER, *(by_name[name] for name, n in rows.items() for _ in range(n))])


def test_the_recorded_dump_is_read_by_its_header_queued_and_executing_alike() -> None:
    held = parse_dump(RECORDED)
    assert [(h.user, h.queued) for h in held] == [
        (AGENT, True), (AGENT, True), (AGENT, False), (NODE, True), (NODE, True), (NODE, False),
        ("admin", False),
    ]  # fmt: skip
    assert {(h.priority_level, h.flow_schema) for h in held} == {
        ("workload-low", "service-accounts"), ("system", "system-nodes"), ("exempt", "exempt"),
    }  # fmt: skip
    assert [h.path for h in held[:2]] == ["/api/v1/nodes", "/api/v1/pods"]
    assert held[0].verb == "list"


def test_the_ranking_orders_users_by_requests_held_and_marks_the_protected() -> None:
    """The agents hold one request more than the kubelet over two samples (alone, the
    kubelet would come first by name)."""
    talkers = rank([parse_dump(RECORDED), parse_dump(_dump(agent=1))])
    assert [(t.user, t.held, t.share, t.protected) for t in talkers] == [
        (AGENT, 4, 0.5, False), (NODE, 3, 0.375, True), ("admin", 1, 0.125, True),
    ]  # fmt: skip
    agent, node, admin = talkers
    assert (agent.flow_schema, agent.priority_level) == ("service-accounts", "workload-low")
    assert (node.flow_schema, node.priority_level) == ("system-nodes", "system")
    assert node.why == "a kubelet"
    assert admin.why.startswith("exempt from API Priority and Fairness")


def test_held_requests_are_summed_over_the_samples() -> None:
    """The kubelet holds more in the first sample, the agents more over both."""
    first, second = parse_dump(_dump(agent=3, node=5)), parse_dump(_dump(agent=6, node=1))
    assert [t.user for t in rank([first])] == [NODE, AGENT]
    talkers = rank([first, second])
    assert [(t.user, t.held, round(t.share, 3)) for t in talkers] == [
        (AGENT, 9, 0.6),
        (NODE, 6, 0.4),
    ]


def test_rows_without_a_user_count_in_the_shares_and_a_torn_row_is_skipped() -> None:
    blank = " " * len(AGENT)
    by_user_name = AGENT_QUEUED.replace(AGENT, blank, 1)  # no distinguisher, a UserName
    no_user = AGENT_QUEUED.replace(AGENT, blank)  # neither
    torn = AGENT_QUEUED.replace(AGENT, "odd,name", 1)  # one cell too many
    held = parse_dump("\n".join([HEADER, AGENT_QUEUED, by_user_name, no_user, torn]))
    assert [h.user for h in held] == [AGENT, AGENT, ""]
    [talker] = rank([held])
    assert (talker.user, talker.held, round(talker.share, 3)) == (AGENT, 2, 0.667)


def test_guardian_itself_and_configured_subjects_are_protected_talkers() -> None:
    guardian = Identity("system:serviceaccount:telemetry:telemetry-agent", ())
    [agent] = rank([parse_dump(_dump(agent=2))], identity=guardian)
    assert (agent.protected, agent.why) == (True, "guardian's own identity")
    [agent] = rank([parse_dump(_dump(agent=2))], extra=("serviceaccount:telemetry/*",))
    assert agent.why == "listed in policy.protected_subjects as serviceaccount:telemetry/*"
    [agent] = rank([parse_dump(_dump(agent=2))])
    assert not agent.protected


def test_a_service_account_talker_maps_to_its_subject() -> None:
    load = FlowLoad("service-accounts", "workload-low", 300, 2, 2, rejected=41.5)
    [agent, node] = rank([parse_dump(_dump(agent=2, node=1))], [load])
    assert agent.service_account == ("telemetry", "telemetry-agent")
    assert node.service_account is None
    assert agent.to_json() == {
        "user": AGENT, "flow_schema": "service-accounts", "priority_level": "workload-low",
        "held": 2, "share": 0.6667, "protected": False, "why": "", "rejected": 41.5,
        "namespace": "telemetry", "name": "telemetry-agent",
    }  # fmt: skip
    assert (node.rejected, node.to_json()["namespace"]) == (None, None)


def test_what_is_not_a_dump_is_one_line_naming_the_endpoint() -> None:
    with pytest.raises(DataUnavailable) as error:
        parse_dump('{"kind": "Status"}\n')
    assert error.value.message == (
        "dump_requests: the answer is not APF's request table (no PriorityLevelName, "
        'FlowSchemaName header): \'{"kind": "Status"}\''
    )
    assert parse_dump("") == []


class Recorded:
    """An ``ApfReader`` answering from recorded dumps; ``None`` stands for a failed read."""

    def __init__(self, dumps: Sequence[str | None], flows: Sequence[FlowLoad] = ()) -> None:
        self.dumps = list(dumps)
        self.loads = flows
        self.reads = 0

    def dump_requests(self) -> str:
        dump = self.dumps[self.reads]
        self.reads += 1
        if dump is None:
            raise TransientKubernetesError("GET /debug/api_priority_and_fairness: HTTP 503")
        return dump

    def flows(self) -> Sequence[FlowLoad]:
        return self.loads


def test_top_talkers_samples_apart_and_skips_a_failed_sample() -> None:
    slept: list[float] = []
    reader = Recorded([_dump(node=4), None, _dump(agent=5)])
    talkers = top_talkers(reader, samples=3, interval=1.5, sleep=slept.append)
    assert (reader.reads, slept) == (3, [1.5, 1.5])
    assert [(t.user, t.held) for t in talkers] == [(AGENT, 5), (NODE, 4)]
    with pytest.raises(DataUnavailable, match=r"no dump_requests sample was read \(GET .*503\)"):
        top_talkers(Recorded([None, None]), samples=2, sleep=slept.append)


def test_the_context_s_talkers_are_json_or_none_when_apf_could_not_be_read(
    nowhere: Kube,
) -> None:
    """guardian's own identity is unknown here (nothing answers): the ranking still holds."""
    reader = Recorded([_dump(agent=2, node=1)])
    talkers = talkers_context(reader, nowhere, samples=1, sleep=lambda _: None)
    assert [(t["user"], t["name"], t["protected"]) for t in talkers or []] == [
        (AGENT, "telemetry-agent", False), (NODE, None, True),
    ]  # fmt: skip
    assert talkers_context(Recorded([None]), nowhere, samples=1) is None


def _talkers(*users: str) -> tuple[dict[str, object], ...]:
    talkers = rank([parse_dump(_dump(node=1))])  # a protected one, for its flags
    protected = {t.user: t for t in talkers}
    shares = [0.5, 0.2, 0.15, 0.1, 0.05]
    return tuple(
        protected[u].to_json() | {"share": s} if u in protected else {"user": u, "share": s}
        for u, s in zip(users, shares, strict=False)
    )


def _throttle(subject: str, talkers: object, **more: object) -> ThrottleClientParams:
    kind, _, name = subject.partition(" ")
    namespace, _, account = name.rpartition("/")
    fields = {"subject": kind, "name": account, "namespace": namespace or None}
    return ThrottleClientParams.model_validate({**fields, "talkers": talkers, **more})


@pytest.fixture
def nowhere() -> Kube:
    kube = Kube.from_token("https://127.0.0.1:9", "unused", "/nonexistent/ca.crt")
    kube.total_timeout = 0.5
    return kube


def test_the_throttle_refuses_the_kubelets_when_one_is_the_top_talker(nowhere: Kube) -> None:
    talkers = _talkers(NODE, AGENT)
    expected = f"throttle-client: top talker {NODE} is protected (a kubelet); not throttling"
    for subject in ("group system:nodes", f"user {NODE}"):
        assert talker_refusal(_throttle(subject, talkers)) == expected
        with pytest.raises(Refused) as refused:
            CATALOGUE["throttle-client"].plan(nowhere, _throttle(subject, talkers))
        assert refused.value.message == expected
    assert nowhere.requests == 0


def test_a_suspect_not_among_the_top_talkers_is_not_throttled(nowhere: Kube) -> None:
    talkers = _talkers("alice", "bob", "carol", AGENT)
    expected = (
        "throttle-client: serviceaccount telemetry/telemetry-agent is not among the top 3 "
        "talkers (alice 50%, bob 20%, carol 15%); not throttling"
    )
    agent = _throttle("serviceaccount telemetry/telemetry-agent", talkers)
    assert talker_refusal(agent) == expected
    with pytest.raises(Refused, match="is not among the top 3 talkers"):
        CATALOGUE["throttle-client"].plan(nowhere, agent)
    assert nowhere.requests == 0
    more = _throttle("serviceaccount telemetry/telemetry-agent", talkers, top=4)
    assert talker_refusal(more) is None


def test_a_protected_top_talker_is_named_when_the_suspect_is_not_among_them() -> None:
    params = _throttle("serviceaccount telemetry/telemetry-agent", _talkers(NODE, "alice"), top=2)
    assert talker_refusal(params) == (
        f"throttle-client: top talker {NODE} is protected (a kubelet); serviceaccount "
        f"telemetry/telemetry-agent is not among the top 2 talkers ({NODE} 50%, alice 20%); "
        "not throttling"
    )


def test_a_top_talker_is_allowed_through_its_account_user_or_group() -> None:
    talkers = _talkers(NODE, AGENT)
    for subject in (
        "serviceaccount telemetry/telemetry-agent",
        "serviceaccount telemetry/*",
        f"user {AGENT}",
        "group system:serviceaccounts:telemetry",
    ):
        assert talker_refusal(_throttle(subject, talkers)) is None, subject
    # the members of any other group are not in the dump: not among the talkers
    assert "not among the top 3" in str(talker_refusal(_throttle("group telemetry", talkers)))
    assert covers("group", "system:serviceaccounts", AGENT)
    assert not covers("group", "system:serviceaccounts:kube-system", AGENT)


def test_without_talkers_the_check_holds_only_when_required() -> None:
    agent = "serviceaccount telemetry/telemetry-agent"
    assert talker_refusal(_throttle(agent, None)) is None
    assert talker_refusal(_throttle(agent, None, require_top_talker=True)) == (
        "throttle-client: no top talkers known for serviceaccount telemetry/telemetry-agent "
        "(APF's dump_requests was not read); guardian throttles only a client APF shows "
        "among the top talkers"
    )
    assert talker_refusal(_throttle(agent, [])) == (
        "throttle-client: serviceaccount telemetry/telemetry-agent is not among the top 3 "
        "talkers (APF holds no request); not throttling"
    )


def test_a_talker_marked_protected_by_the_ranking_stays_protected() -> None:
    marked = [{"user": AGENT, "share": 0.9, "protected": True, "why": "guardian's own identity"}]
    params = _throttle("serviceaccount telemetry/telemetry-agent", marked)
    assert talker_refusal(params) == (
        f"throttle-client: top talker {AGENT} is protected (guardian's own identity); "
        "not throttling"
    )


BOOKS = load_playbooks([ROOT / "playbooks"], {n: a.params for n, a in CATALOGUE.items()})


def _section_texts(blocks: list[dict[str, object]]) -> list[str]:
    return [str(b["text"]["text"]) for b in blocks if b["type"] == "section"]  # type: ignore[index]


def test_the_approval_message_shows_the_top_talkers(store: Store) -> None:
    now = datetime(2026, 12, 1, 15, 20, tzinfo=UTC)
    flows = [FlowLoad("service-accounts", "workload-low", rejected=41.5)]
    talkers = rank([parse_dump(_dump(agent=6, node=3, admin=1))], flows)
    context = {"talkers": [t.to_json() for t in talkers]}
    ex = store.create("throttle-offender", "apiserver", "", "proposed", "U1", "slack", context, now)
    _, blocks = render(ex, BOOKS["throttle-offender"], {}, store, "proposed")
    assert block_problems(blocks) == []
    [shown] = [t for t in _section_texts(blocks) if t.startswith("*Top talkers*")]
    assert shown.splitlines() == [
        "*Top talkers* (requests held by API Priority and Fairness)",
        f"1. {AGENT}: 60% (flow schema service-accounts, 41.5 rejected/s)",
        f"2. {NODE}: 30% (flow schema system-nodes), protected: a kubelet",
        "3. admin: 10% (flow schema exempt), protected: exempt from API Priority and Fairness: "
        "in system:masters or a component the exempt flow schemas match",
    ]
    quiet = store.create("throttle-offender", "apiserver", "", "proposed", "U1", "slack", {}, now)
    _, blocks = render(quiet, BOOKS["throttle-offender"], {}, store, "proposed")
    assert not [t for t in _section_texts(blocks) if "Top talkers" in t]
