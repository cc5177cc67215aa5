"""The playbook spec (``version: guardian/v1``, one playbook per file): what it may say.

Input: one parsed YAML document. Output: a ``PlaybookSpec`` (pydantic, frozen, unknown keys
forbidden). Called by ``guardian.playbooks.load``, which also checks what needs the action
catalogue (action names, parameter names) and the SLO config (trigger names).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from guardian.config.checks import Spec, at_most
from guardian.config.read import shown

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class TriggerSpec(Spec):
    """Which burning SLOs start this playbook: by name, by labels, or both (either matches)."""

    slos: list[str] = Field(default_factory=list, description="SLO names")
    labels: dict[str, str] = Field(default_factory=dict, description="SLO labels, all must match")
    severity: Literal["page", "ticket"] = Field(
        "page", description="Lowest severity that triggers: page, or ticket (ticket and page)"
    )

    @model_validator(mode="after")
    def _something(self) -> TriggerSpec:
        if not self.slos and not self.labels:
            raise ValueError("give slos or labels (or both) to say which SLOs trigger it")
        return self


class MaintenanceWindowSpec(Spec):
    """A weekly window in which the playbook only notifies (planned work burns on purpose)."""

    days: list[Day] = Field(default_factory=lambda: list(DAYS), min_length=1)
    start: str = Field(description="HH:MM")
    end: str = Field(description="HH:MM; before start means the window spans midnight")
    timezone: str = "UTC"

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError(f"must be a time of day like 02:30 (got {shown(value)})")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"must be an IANA time zone like Europe/Berlin (got {shown(value)})"
            ) from None
        return value


class GuardsSpec(Spec):
    """When a triggered playbook still must not run."""

    cooldown: Annotated[str, BeforeValidator(at_most("7d"))] = Field(
        "30m", description="Quiet time after a run for the same SLO"
    )
    max_runs_per_hour: int = Field(2, ge=1, description="Runs proposed in any hour, at most")
    one_per_target: bool = Field(True, description="At most one open run per SLO and target")
    require_suspect: bool = Field(False, description="Only when a recent rollout is suspected")
    maintenance_windows: list[MaintenanceWindowSpec] = Field(default_factory=list)


class VerifySpec(Spec):
    """What must hold after each batch before the next one, and after the step."""

    burn_falls: bool = Field(
        False, description="The triggering SLO's short-window burn rate is below where it was"
    )
    promql: str | None = Field(None, description="A PromQL expression that must return a result")
    within: Annotated[str, BeforeValidator(at_most("1d"))] = Field(
        "2m", description="How long to wait for it"
    )


class StepSpec(Spec):
    """One action of the playbook."""

    name: str
    action: str = Field(description="An action of the catalogue, e.g. pause-rollout")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Action parameters; strings may hold {{ templates }}"
    )
    approval: Literal["required", "auto"] = "required"
    verify: VerifySpec | None = None
    timeout: Annotated[str, BeforeValidator(at_most("1d"))] = Field(
        "10m", description="The step fails when it takes longer"
    )
    on_failure: Literal["stop", "undo"] = Field(
        "stop", description="stop: leave what was applied; undo: undo this run's steps"
    )
    context: str | None = Field(
        None, description="kubeconfig context to act through (e.g. the management cluster)"
    )
    when: str | None = Field(
        None,
        description="A template path, e.g. params.apiserver_name: the step is skipped when it "
        "names nothing",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)


class ApproversSpec(Spec):
    """Who may approve: Slack user IDs and user-group IDs (console users by name)."""

    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)


class PlaybookSpec(Spec):
    """One playbook file."""

    version: Literal["guardian/v1"]
    name: str
    description: str = ""
    trigger: TriggerSpec
    guards: GuardsSpec = GuardsSpec()
    approvers: ApproversSpec = ApproversSpec()
    steps: list[StepSpec] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)

    @model_validator(mode="after")
    def _unique_steps(self) -> PlaybookSpec:
        names = [s.name for s in self.steps]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"steps: step name {shown(name, 70)} is used twice")
        return self


def _check_name(value: str) -> str:
    if not _NAME.match(value) or len(value) > 63:
        raise ValueError(
            f"must be lower-case letters, digits and '-', at most 63 (got {shown(value, 70)})"
        )
    return value
