"""Actions: typed parameters → a concrete ``Plan`` → dry run / apply → verify → undo.

Input: an action's parameters and a ``KubeAPI`` (the gentle client). Output: ``Plan`` (the
exact requests, each with the state it replaces and a readable diff) and ``Outcome``
values. Called by ``guardian.planning`` (plans, dry run), ``guardian.executor`` (apply, undo,
verify) and the CLI (``guardian act``). A plan records what it
changes, so ``undo`` restores exactly that; applying a plan twice changes nothing the second
time (every change is a create-if-absent, a patch to a target value, or a delete).
"""

from __future__ import annotations

import difflib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import yaml

from guardian.errors import PermanentKubernetesError, UsageError

JSON = dict[str, Any]
Op = Literal["create", "patch", "delete", "post"]


class KubeAPI(Protocol):
    """What actions need from the API server (``guardian.clients.kube.Kube``)."""

    def get(self, path: str, query: dict[str, str] | None = None) -> JSON: ...

    def exists(self, path: str) -> bool: ...

    def list(
        self, path: str, query: dict[str, str] | None = None, page: int = 500
    ) -> Iterator[JSON]: ...

    def create(self, path: str, body: JSON, dry_run: bool = False) -> JSON: ...

    def patch(self, path: str, body: Any, kind: str = "merge", dry_run: bool = False) -> JSON: ...

    def delete(self, path: str, dry_run: bool = False) -> JSON: ...


class Refused(UsageError):
    """The action would touch something guardian never touches (exit 2); nothing was sent."""


@dataclass(frozen=True)
class Guardrails:
    """What configuration adds to the built-in limits of every action (never removes)."""

    protected_subjects: tuple[str, ...] = ()
    """Extra ``user:``, ``group:`` or ``serviceaccount:NS/NAME`` entries throttle-client
    refuses, beside the built-in ones (``guardian.actions.protected``)."""
    max_changes: int = 200
    """Blast radius: requests one plan (one run) may change at most."""

    def check(self, plan: Plan) -> None:
        """Refuse ``plan`` when it changes more than ``max_changes`` objects."""
        if len(plan.changes) > self.max_changes:
            raise Refused(
                f"{plan.action}: blast radius: {len(plan.changes)} changes would exceed the "
                f"maximum of {self.max_changes} (policy.max_changes); ask for fewer"
            )


BUILT_IN = Guardrails()
"""The guardrails without configuration: the built-in limits only."""


@dataclass(frozen=True)
class Change:
    """One request of a plan."""

    op: Op
    path: str
    """Object path (``create``: the collection path)."""
    body: Any
    description: str
    kind: str = "merge"
    """Patch type for ``patch``: merge, json or strategic."""
    before: Any = None
    """What the changed fields were, for undo and the diff (``None``: the object is new)."""
    after: Any = None
    """What they will be."""
    undo: Change | None = None
    batch: int = 0
    """Changes run batch by batch; ``execute`` may check the SLO between two batches."""


@dataclass(frozen=True)
class Plan:
    """The exact changes an action would make, with a diff for humans."""

    action: str
    target: str
    changes: tuple[Change, ...]
    notes: tuple[str, ...] = ()

    def diff(self) -> str:
        """A unified diff of every change, before → after, as YAML."""
        parts = []
        for change in self.changes:
            before = _yaml(change.before) if change.op != "create" else ""
            after = _yaml(change.after) if change.op != "delete" else ""
            lines = difflib.unified_diff(
                before.splitlines(), after.splitlines(), change.path, change.path, lineterm=""
            )
            parts.append(f"# {change.description}\n" + "\n".join(lines))
        return "\n".join(parts)

    def to_record(self) -> JSON:
        """Everything needed to apply, verify and undo the plan later (``from_record``)."""
        return {
            "action": self.action,
            "target": self.target,
            "notes": list(self.notes),
            "changes": [_change_record(c) for c in self.changes],
        }

    @classmethod
    def from_record(cls, record: JSON) -> Plan:
        """The plan ``to_record`` wrote."""
        return cls(
            record["action"],
            record["target"],
            tuple(_change_from(c) for c in record["changes"]),
            tuple(record.get("notes", ())),
        )

    def batches(self) -> list[int]:
        """The batch numbers of the plan, in order."""
        return sorted({c.batch for c in self.changes})

    def only(self, batch: int) -> Plan:
        """The plan restricted to one batch."""
        kept = tuple(c for c in self.changes if c.batch == batch)
        return Plan(self.action, self.target, kept, self.notes)

    def to_json(self) -> JSON:
        """The plan as a JSON document."""
        return {
            "action": self.action,
            "target": self.target,
            "notes": list(self.notes),
            "changes": [
                {
                    "op": c.op,
                    "path": c.path,
                    "description": c.description,
                    "patch_type": c.kind if c.op == "patch" else None,
                    "body": c.body,
                    "before": c.before,
                    "after": c.after,
                }
                for c in self.changes
            ],
        }


@dataclass
class Outcome:
    """What applying (or dry-running) a plan did."""

    plan: Plan
    dry_run: bool
    applied: list[str] = field(default_factory=list)
    verified: bool | None = None
    problems: list[str] = field(default_factory=list)


def _change_record(change: Change) -> JSON:
    return {
        "op": change.op,
        "path": change.path,
        "body": change.body,
        "description": change.description,
        "kind": change.kind,
        "before": change.before,
        "after": change.after,
        "batch": change.batch,
        "undo": _change_record(change.undo) if change.undo else None,
    }


def _change_from(record: JSON) -> Change:
    return Change(
        record["op"],
        record["path"],
        record["body"],
        record["description"],
        record.get("kind", "merge"),
        record.get("before"),
        record.get("after"),
        _change_from(record["undo"]) if record.get("undo") else None,
        int(record.get("batch", 0)),
    )


def execute(
    kube: KubeAPI,
    plan: Plan,
    dry_run: bool = False,
    between_batches: Callable[[int], bool] | None = None,
) -> Outcome:
    """Send every change of ``plan`` (with ``dryRun=All`` when ``dry_run``).

    After each batch but the last, ``between_batches(batch)`` may return False to stop.
    """
    outcome = Outcome(plan, dry_run)
    last = max((c.batch for c in plan.changes), default=0)
    for index, change in enumerate(plan.changes):
        _send(kube, change, dry_run)
        outcome.applied.append(change.description)
        following = plan.changes[index + 1] if index + 1 < len(plan.changes) else None
        ends_batch = following is None or following.batch != change.batch
        more = ends_batch and change.batch < last and between_batches is not None
        if more and between_batches is not None and not between_batches(change.batch):
            outcome.problems.append(f"stopped after batch {change.batch + 1}")
            break
    return outcome


def undo(kube: KubeAPI, plan: Plan, dry_run: bool = False) -> list[str]:
    """Reverse ``plan``, last change first; returns what was done."""
    done = []
    for change in reversed(plan.changes):
        if change.undo is not None:
            _send(kube, change.undo, dry_run)
            done.append(change.undo.description)
    return done


def _send(kube: KubeAPI, change: Change, dry_run: bool) -> None:
    if change.op == "create":
        name = change.body["metadata"]["name"]
        if not dry_run and kube.exists(f"{change.path}/{name}"):
            return  # idempotent: already there
        kube.create(change.path, change.body, dry_run=dry_run)
    elif change.op == "post":
        kube.create(change.path, change.body, dry_run=dry_run)
    elif change.op == "patch":
        kube.patch(change.path, change.body, change.kind, dry_run=dry_run)
    else:
        try:
            kube.delete(change.path, dry_run=dry_run)
        except PermanentKubernetesError as exc:
            if "HTTP 404" not in exc.message:
                raise


def dig(obj: JSON, *keys: str) -> Any:
    """``obj[k1][k2]...`` or ``None``."""
    node: Any = obj
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _yaml(value: Any) -> str:
    if value is None:
        return ""
    return yaml.safe_dump(json.loads(json.dumps(value)), sort_keys=True)


def verify_until(
    check: Callable[[], list[str]],
    timeout: float,
    interval: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Call ``check`` until it finds no problem or ``timeout`` seconds have passed.

    Returns the last problems (empty: verified). ``timeout`` 0 checks once.
    """
    deadline = clock() + timeout
    while True:
        problems = check()
        if not problems or clock() >= deadline:
            return problems
        sleep(min(interval, max(deadline - clock(), 0.0)))
