"""Playbook files: the shipped ones load, bad ones get one breadcrumb line each."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from guardian.actions import CATALOGUE
from guardian.config import load_config
from guardian.errors import ConfigErrors
from guardian.playbooks import load_playbooks, template
from guardian.playbooks.model import MaintenanceWindow
from tests.lab_fixture import ROOT

ACTIONS = {name: action.params for name, action in CATALOGUE.items()}
SLOS = ["apiserver-read-latency", "dns-errors"]

GOOD = """\
version: guardian/v1
name: pause-it
trigger: {slos: [apiserver-read-latency]}
steps:
  - name: pause
    action: pause-rollout
    params: {kind: "{{ suspects[0].kind }}", namespace: x, name: "{{ suspects[0].name }}"}
"""


def _load(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "book.yaml").write_text(text)
    try:
        load_playbooks([tmp_path], ACTIONS, SLOS)
    except ConfigErrors as exc:
        return [e.message.replace(str(tmp_path) + "/", "") for e in exc.errors]
    return []


def test_the_shipped_playbooks_load_against_the_shipped_config() -> None:
    config = load_config(ROOT / "config")
    books = load_playbooks(config.policy.playbook_paths, ACTIONS, [s.name for s in config.slos])
    assert sorted(books) == [
        "control-plane-overload",
        "halt-change",
        "pause-suspect-rollout",
        "scale-apiserver",
        "shed-nodes",
        "throttle-offender",
    ]
    overload = books["control-plane-overload"]
    assert [s.action for s in overload.steps] == [
        "throttle-client",
        "pause-rollout",
        "shed-nodes",
        "scale-apiserver",
    ]
    assert all(s.approval == "required" for s in overload.steps)
    assert overload.needs == ("offender", "params", "suspects", "talkers")


CASES = [
    ("a good playbook", GOOD, []),
    (
        "an unknown action names the known ones",
        GOOD.replace("action: pause-rollout", "action: pause"),
        [
            "book.yaml: steps[0] 'pause': action: unknown action 'pause' (known: halt-change, "
            "pause-rollout, scale-apiserver, shed-nodes, throttle-client)"
        ],
    ),
    (
        "an unknown parameter",
        GOOD.replace("namespace: x", "namespace: x, force: true"),
        [
            "book.yaml: steps[0] 'pause': params: force: not a parameter of pause-rollout "
            "(known: kind, namespace, name, rollback, quarantine)"
        ],
    ),
    (
        "a template with an unknown root",
        GOOD.replace("suspects[0].kind", "suspect.kind"),
        [
            "book.yaml: steps[0] 'pause': params: {{ suspect.kind }}: unknown name 'suspect' "
            "(known: suspects, slo, params, offender, change, talkers)"
        ],
    ),
    (
        "plain parameters are checked by the action's own model",
        GOOD.replace('"{{ suspects[0].kind }}"', "Pod").replace('"{{ suspects[0].name }}"', "web"),
        [
            "book.yaml: steps[0] 'pause': params: kind: must be one of Deployment, StatefulSet, "
            "DaemonSet, Rollout (got 'Pod')"
        ],
    ),
    (
        "an unknown SLO in the trigger",
        GOOD.replace("[apiserver-read-latency]", "[api-latency]"),
        [
            "book.yaml: trigger: slos: unknown SLO 'api-latency' (known: apiserver-read-latency, "
            "dns-errors)"
        ],
    ),
    (
        "a bad approval value",
        GOOD + "    approval: maybe\n",
        ["book.yaml: steps[0] 'pause': approval: must be one of required, auto (got 'maybe')"],
    ),
    (
        "a trigger that names nothing",
        GOOD.replace("trigger: {slos: [apiserver-read-latency]}", "trigger: {severity: page}"),
        ["book.yaml: trigger: give slos or labels (or both) to say which SLOs trigger it"],
    ),
    (
        "a bad time zone",
        GOOD.replace(
            "steps:",
            "guards:\n  maintenance_windows: [{start: '01:00', end: '02:00', timezone: Mars}]\n"
            "steps:",
        ),
        [
            "book.yaml: guards: maintenance_windows[0]: timezone: must be an IANA time zone like "
            "Europe/Berlin (got 'Mars')"
        ],
    ),
    (
        "the wrong version",
        GOOD.replace("guardian/v1", "guardian/v2"),
        ["book.yaml: version: must be guardian/v1 (got 'guardian/v2')"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_playbook_errors_are_one_breadcrumb_line_each(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    assert _load(tmp_path, text) == expected


def test_templates_keep_the_type_of_a_whole_value_and_explain_misses() -> None:
    context = {"suspects": [{"name": "agent", "touches": 3}], "params": {}}
    assert template.render("{{ suspects[0].touches }}", context) == 3
    assert template.render("ds/{{ suspects[0].name }}", context) == "ds/agent"
    with pytest.raises(template.TemplateError, match=r"suspects has 1 entries"):
        template.render("{{ suspects[1].name }}", context)
    with pytest.raises(template.TemplateError, match=r"params has no field 'kind'"):
        template.render("{{ params.kind }}", context)
    with pytest.raises(template.TemplateError, match=r"only .field and \[index\]"):
        template.check("suspects[0](1)")


def test_a_maintenance_window_may_span_midnight() -> None:
    from datetime import time

    window = MaintenanceWindow(("sat",), time(23, 0), time(2, 0), "Europe/Berlin")
    saturday_late = datetime(2026, 11, 28, 22, 30, tzinfo=UTC)  # 23:30 in Berlin, Saturday
    sunday_early = datetime(2026, 11, 29, 0, 30, tzinfo=UTC)  # 01:30 Sunday
    sunday_late = datetime(2026, 11, 29, 22, 30, tzinfo=UTC)
    assert window.covers(saturday_late) and window.covers(sunday_early)
    assert not window.covers(sunday_late)
