"""``verify_until``: how long and how often verification polls."""

from __future__ import annotations

from guardian.actions.base import verify_until
from tests.clock import Clock


def test_polls_until_the_check_passes() -> None:
    answers = [["1 of 3 ready"], ["2 of 3 ready"], []]
    fake = Clock()
    problems = verify_until(lambda: answers.pop(0), 60, 2, fake, fake.sleep)
    assert problems == [] and fake.sleeps == [2, 2]


def test_gives_up_at_the_deadline_with_the_last_problems() -> None:
    fake = Clock()
    problems = verify_until(lambda: ["0 of 3 ready"], 5, 2, fake, fake.sleep)
    assert problems == ["0 of 3 ready"] and fake.sleeps == [2, 2, 1]


def test_zero_timeout_checks_once() -> None:
    fake = Clock()
    calls: list[int] = []
    verify_until(lambda: calls.append(1) or ["x"], 0, 2, fake, fake.sleep)
    assert calls == [1] and fake.sleeps == []
