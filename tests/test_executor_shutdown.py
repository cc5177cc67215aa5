"""On shutdown the executor finishes the step in flight, and a step whose plan was just made
is in flight: it is applied and verified, never left planned but unsent."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from guardian.clients.store import Store
from guardian.executor.runner import Runner
from tests.test_executor_round_trips import BOOK, FakeKube, executor

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TWO_STEPS = (
    BOOK
    + """\
  - name: pause-again
    action: pause-rollout
    params: {kind: Deployment, namespace: web, name: api}
"""
)


def _runner(tmp_path: Path) -> tuple[Store, Runner, FakeKube]:
    store = Store.open(f"sqlite:///{tmp_path / 'guardian.db'}")
    runner, kube = executor(tmp_path, TWO_STEPS, store)
    return store, runner, kube


def test_a_shutdown_right_after_planning_still_applies_that_step_and_starts_no_other(
    tmp_path: Path,
) -> None:
    store, runner, kube = _runner(tmp_path)
    try:
        ex = runner.propose("pause-api", {}, "alice", "console")
        runner.advance(ex.id)
        assert runner.approve(ex.id, "bob", "console", step=0).ok

        def boundary(where: str) -> None:
            if where == "planned 0":
                runner.stopping.set()  # SIGTERM arrives while the step is being planned

        runner.on_boundary = boundary
        after = runner.advance(ex.id)
        assert store.applied_phases(ex.id) == [(0, 0)], "the planned step was not carried out"
        assert kube.paused
        assert [s.status for s in store.steps(ex.id)] == ["succeeded"], "a second step began"
        assert after.state != "approved" or after.step == 1
    finally:
        store.close()
