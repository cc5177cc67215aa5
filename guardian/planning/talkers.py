"""Who floods the API server, from what API Priority and Fairness holds for each client.

Input: samples of ``/debug/api_priority_and_fairness/dump_requests?includeRequestDetails=1``
(the text table the API server writes: one row per request APF holds, queued, and in recent
Kubernetes (the lab's v1.34) executing too; ``parse_dump``), optionally ``FlowLoad`` per flow
schema from the ``apiserver_flowcontrol_*`` series, guardian's own identity and the configured
protected subjects. Output: ``Talker`` values, users ranked by the requests held for them
summed over the samples (``rank``), each with its share, its flow schema and priority level,
that schema's rejected rate, and whether it is protected (``guardian.actions.protected``);
``Talker.to_json`` is what a trigger context carries as ``talkers`` and throttle-client's
``talkers`` parameter reads. ``top_talkers`` samples an ``ApfReader`` (the port;
``guardian.clients.apf.ApfClient`` implements it) a few times and ranks; ``talkers_context``
gives that ranking as a trigger context's ``talkers`` (or ``None`` when APF could not be read).
Pure but for the reader, the sleep between samples and one SelfSubjectReview. Used by
``guardian.clients.apf`` (``FlowLoad``) and by ``guardian.planning.trigger``
(``talkers_context``, for a playbook that names ``{{ talkers }}``); tests:
``tests/test_talkers.py``, ``tests/test_talkers_lab.py``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from guardian.actions import protected
from guardian.actions.base import KubeAPI
from guardian.errors import DataUnavailable, GuardianError

log = logging.getLogger("guardian.planning.talkers")
EXEMPT = "exempt"
"""The priority level APF never queues: its users (system:masters, probes) are protected."""


@dataclass(frozen=True)
class HeldRequest:
    """One row of a dump: a request APF holds (queued, or executing)."""

    priority_level: str
    flow_schema: str
    user: str
    queued: bool
    verb: str = ""
    path: str = ""


@dataclass(frozen=True)
class FlowLoad:
    """One flow schema's load, from the ``apiserver_flowcontrol_*`` series."""

    flow_schema: str
    priority_level: str
    inqueue: float = 0.0
    executing: float = 0.0
    seats: float = 0.0
    rejected: float = 0.0
    """Requests rejected per second (``rate(apiserver_flowcontrol_rejected_requests_total)``)."""


@dataclass(frozen=True)
class Talker:
    """A client and what APF held for it, over all samples."""

    user: str
    flow_schema: str
    priority_level: str
    held: int
    share: float
    protected: bool
    why: str = ""
    """Why it is protected ("" when it is not)."""
    rejected: float | None = None
    """Its flow schema's rejected requests per second, when Prometheus was read."""

    @property
    def service_account(self) -> tuple[str, str] | None:
        """``(namespace, name)`` when the user is ``system:serviceaccount:NS:NAME``."""
        if not self.user.startswith(protected.SA_USER):
            return None
        namespace, _, name = self.user.removeprefix(protected.SA_USER).partition(":")
        return (namespace, name) if namespace and name and ":" not in name else None

    def to_json(self) -> dict[str, Any]:
        """The talker as a trigger context holds it (``namespace``/``name`` for an account)."""
        account = self.service_account
        return {
            "user": self.user,
            "flow_schema": self.flow_schema,
            "priority_level": self.priority_level,
            "held": self.held,
            "share": round(self.share, 4),
            "protected": self.protected,
            "why": self.why,
            "rejected": self.rejected,
            "namespace": account[0] if account else None,
            "name": account[1] if account else None,
        }


class ApfReader(Protocol):
    """What ``top_talkers`` reads: APF's dump, and its series per flow schema."""

    def dump_requests(self) -> str: ...

    def flows(self) -> Sequence[FlowLoad]: ...


def parse_dump(text: str) -> list[HeldRequest]:
    """The rows of one ``dump_requests`` text, columns found by their header's names.

    Rows are ``,``-separated cells padded with spaces; a row with a different number of cells
    than the header (a user name holding a comma) is skipped rather than misread. The user is
    ``UserName`` when the dump has request details, else ``FlowDistingsher`` (the user for a
    ``ByUser`` flow schema)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = [cell.strip() for cell in lines[0].split(",")]
    if "PriorityLevelName" not in header or "FlowSchemaName" not in header:
        raise DataUnavailable(
            "dump_requests: the answer is not APF's request table (no PriorityLevelName, "
            f"FlowSchemaName header): {lines[0][:80]!r}"
        )
    rows = (dict(zip(header, cells, strict=True)) for cells in _cells(lines[1:], len(header)))
    return [_held(row) for row in rows]


def _cells(lines: Sequence[str], width: int) -> list[list[str]]:
    split = ([cell.strip() for cell in line.split(",")] for line in lines)
    return [cells for cells in split if len(cells) == width]


def _held(row: Mapping[str, str]) -> HeldRequest:
    return HeldRequest(
        row["PriorityLevelName"],
        row["FlowSchemaName"],
        row.get("UserName") or row.get("FlowDistingsher", ""),
        row.get("RequestIndexInQueue", "0") != "-1",
        row.get("Verb", ""),
        row.get("APIPath", ""),
    )


def rank(
    samples: Sequence[Sequence[HeldRequest]],
    flows: Sequence[FlowLoad] = (),
    identity: protected.Identity | None = None,
    extra: tuple[str, ...] = (),
) -> list[Talker]:
    """Users by requests held for them summed over ``samples``, most first (ties by name).

    A user's flow schema and priority level are those holding most of its requests. A user is
    protected when ``guardian.actions.protected`` says so or when APF exempts any of its
    requests (the dump names no groups: an administrator is known by the exempt level). Rows
    without a user (a flow schema not distinguished by user) are left out of the ranking but
    count in the total the shares divide."""
    held: Counter[str] = Counter()
    where: defaultdict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    total = 0
    for request in (r for sample in samples for r in sample):
        total += 1
        if request.user:
            held[request.user] += 1
            where[request.user][(request.flow_schema, request.priority_level)] += 1
    rejected = {f.flow_schema: f.rejected for f in flows}
    talkers = []
    for user, count in sorted(held.items(), key=lambda item: (-item[1], item[0])):
        (schema, level), _ = where[user].most_common(1)[0]
        why = protected.protected("user", user, identity, extra) or _exempt(where[user])
        share = count / total
        talkers.append(
            Talker(user, schema, level, count, share, bool(why), why, rejected.get(schema))
        )
    return talkers


def _exempt(levels: Counter[tuple[str, str]]) -> str:
    """Why a user APF exempts is protected ("" when it is not exempt)."""
    if any(level == EXEMPT for _, level in levels):
        return (
            "exempt from API Priority and Fairness: in system:masters or a component "
            "the exempt flow schemas match"
        )
    return ""


def top_talkers(
    reader: ApfReader,
    samples: int = 3,
    interval: float = 1.0,
    identity: protected.Identity | None = None,
    extra: tuple[str, ...] = (),
    sleep: Callable[[float], None] = time.sleep,
) -> list[Talker]:
    """``samples`` dumps ``interval`` seconds apart, and the flow series once, ranked.

    A sample that fails is skipped; when none could be read, ``DataUnavailable`` says why
    (missing data is never "nobody floods"). Flow series that cannot be read leave the talkers'
    ``rejected`` unknown."""
    read: list[list[HeldRequest]] = []
    errors: list[str] = []
    for index in range(samples):
        if index:
            sleep(interval)
        try:
            read.append(parse_dump(reader.dump_requests()))
        except GuardianError as exc:
            errors.append(exc.message)
    if not read:
        why = errors[-1] if errors else "no sample asked"
        raise DataUnavailable(f"top talkers: no dump_requests sample was read ({why})")
    try:
        flows = reader.flows()
    except GuardianError as exc:
        log.warning("top talkers: the flow schemas' series are unknown: %s", exc.message)
        flows = ()
    return rank(read, flows, identity, extra)


def talkers_context(
    reader: ApfReader,
    kube: KubeAPI,
    extra: tuple[str, ...] = (),
    samples: int = 3,
    interval: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict[str, Any]] | None:
    """A trigger context's ``talkers``: ``top_talkers`` as JSON, guardian itself (one
    SelfSubjectReview per client, ``protected.whoami``) and ``extra`` marked protected; or
    ``None`` when no dump could be read (logged), which a throttle with
    ``require_top_talker`` refuses."""
    identity, unknown = protected.whoami(kube)
    if unknown:
        log.warning("top talkers: %s", unknown)
    try:
        talkers = top_talkers(reader, samples, interval, identity, extra, sleep)
    except DataUnavailable as exc:
        log.warning("%s", exc.message)
        return None
    return [t.to_json() for t in talkers]
