"""How often the executor goes to the store to move one execution one step (SQLite).

A counting wrapper around the store counts the store methods the runner calls and the
database transactions they open, for two moves: proposed → awaiting approval (a step that
needs a human), and approved → step 1 applied and verified (one phase, on a fake API server).
Measured before the executor became a state machine with a shell: 9 and 21 calls (as many
transactions); the bounds below are the figures after (6 and 13). ``-s`` prints them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from guardian.actions import CATALOGUE
from guardian.actions.base import JSON
from guardian.clients.store import Store
from guardian.executor.runner import Runner
from guardian.playbooks import Playbook, load_playbooks
from tests.signals import NoSignals

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PATH = "/apis/apps/v1/namespaces/web/deployments/api"

BOOK = """\
version: guardian/v1
name: pause-api
trigger: {labels: {tier: control-plane}}
approvers: {users: [bob]}
steps:
  - name: pause
    action: pause-rollout
    params: {kind: Deployment, namespace: web, name: api}
"""


class FakeKube:
    """One Deployment whose ``spec.paused`` follows the patches sent to it."""

    def __init__(self) -> None:
        self.paused = False

    def get(self, path: str, query: dict[str, str] | None = None) -> JSON:
        assert path == PATH
        return {"spec": {"paused": self.paused}}

    def exists(self, path: str) -> bool:
        return True

    def list(self, path: str, query: dict[str, str] | None = None, page: int = 500) -> Any:
        return iter(())

    def create(self, path: str, body: JSON, dry_run: bool = False) -> JSON:
        return body

    def patch(self, path: str, body: Any, kind: str = "merge", dry_run: bool = False) -> JSON:
        if not dry_run:
            self.paused = bool(body["spec"]["paused"])
        return {}

    def delete(self, path: str, dry_run: bool = False) -> JSON:
        return {}


class Counting:
    """The store, with every method call counted (and, through the engine, every transaction)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.calls: Counter[str] = Counter()
        self.transactions = 0
        event.listen(store.engine, "begin", self._began)

    def _began(self, conn: Any) -> None:
        self.transactions += 1

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if not callable(value) or name.startswith("_"):
            return value

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return value(*args, **kwargs)

        return counted

    def reset(self) -> None:
        self.calls.clear()
        self.transactions = 0


def executor(tmp_path: Path, book: str, store: Any) -> tuple[Runner, FakeKube]:
    """A runner of the playbook ``book`` over ``store``, on a fake API server, at ``NOW``."""
    directory = tmp_path / "playbooks"
    directory.mkdir()
    (directory / "book.yaml").write_text(book)
    books: dict[str, Playbook] = load_playbooks(
        [directory], {n: a.params for n, a in CATALOGUE.items()}
    )
    kube = FakeKube()
    return Runner(store, books, lambda context: kube, NoSignals(), clock=lambda: NOW), kube


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[tuple[Counting, Runner]]:
    store = Store.open(f"sqlite:///{tmp_path / 'guardian.db'}")
    counting = Counting(store)
    runner, _ = executor(tmp_path, BOOK, counting)
    yield counting, runner
    store.close()


def _report(what: str, counting: Counting) -> int:
    total = sum(counting.calls.values())
    print(
        f"{what}: {total} store calls, {counting.transactions} transactions: {dict(counting.calls)}"
    )
    return total


def test_proposed_to_awaiting_approval(counted: tuple[Counting, Runner]) -> None:
    counting, runner = counted
    ex = runner.propose("pause-api", {}, "alice", "console")
    counting.reset()
    assert runner.advance(ex.id).state == "awaiting_approval"
    assert _report("proposed → awaiting_approval", counting) <= 6  # before the redesign: 9
    assert counting.calls["ask"] == 1, "the move, the request and its audit row: one write"


def test_approved_to_step_1_applied_and_verified(counted: tuple[Counting, Runner]) -> None:
    counting, runner = counted
    ex = runner.propose("pause-api", {}, "alice", "console")
    runner.advance(ex.id)
    assert runner.approve(ex.id, "bob", "console", step=0).ok
    counting.reset()
    seen: dict[str, tuple[int, int]] = {}

    def boundary(where: str) -> None:
        seen[where] = (sum(counting.calls.values()), counting.transactions)

    runner.on_boundary = boundary
    assert runner.advance(ex.id).state == "succeeded"
    total = _report("approved → succeeded (whole advance)", counting)
    print(f"approved → step 1 applied and verified ('done 0'): {seen['done 0']}")
    assert seen["done 0"][0] <= 13  # before the redesign: 21 calls, 21 transactions
    assert total <= 19  # before: 29
    assert counting.calls["commit"] == 5, "planned, running, applied, step done, succeeded"
