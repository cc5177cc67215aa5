"""The ``change_guard`` section of the ``guardian/v1`` spec: change-aware detection.

Input: the ``change_guard`` mapping of one parsed YAML document. Output: a
``ChangeGuardSpec`` (pydantic, frozen, unknown keys forbidden): which SLOs it watches, the
guard window, the change window pairs (short windows, a fixed factor), the baseline test,
the low-traffic guard and the playbook it proposes. Part of ``guardian.config.spec.FileSpec``;
turned into ``guardian.config.model.ChangeGuardSettings`` by ``guardian.config.guard_build``.
The defaults and the reasoning behind them are written in ``config/policy.yaml``.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BeforeValidator, Field, Strict, model_validator

from guardian.config.checks import LabelNames, Spec, at_most
from guardian.durations import parse_duration


class ChangeWindowSpec(Spec):
    """One change window pair: both windows must burn faster than ``factor``."""

    long: Annotated[str, BeforeValidator(at_most("6h"))]
    short: Annotated[str, BeforeValidator(at_most("1h"))]
    factor: Annotated[float, Strict()] = Field(description="Burn-rate factor both must exceed")

    @model_validator(mode="after")
    def _check(self) -> ChangeWindowSpec:
        if not (math.isfinite(self.factor) and self.factor > 0):
            raise ValueError(f"factor: must be a finite number > 0 (got {self.factor:g})")
        if parse_duration(self.short) >= parse_duration(self.long):
            raise ValueError(
                f"short: must be shorter than long (got short {self.short}, long {self.long})"
            )
        return self


def _default_windows() -> list[ChangeWindowSpec]:
    """10m/2m at 2: the reasoning is written beside the section in ``config/policy.yaml``."""
    return [ChangeWindowSpec(long="10m", short="2m", factor=2.0)]


class BaselineSpec(Spec):
    """The burn now against the same SLO's burn before the change started."""

    window: Annotated[str, BeforeValidator(at_most("1d"))] = Field(
        "1h", description="How long before the change's start the baseline burn is read over"
    )
    ratio: Annotated[float, Strict()] = Field(
        4.0, description="The burn now must be at least this many times the baseline burn"
    )

    @model_validator(mode="after")
    def _check(self) -> BaselineSpec:
        if not (math.isfinite(self.ratio) and self.ratio >= 1):
            raise ValueError(f"ratio: must be a finite number >= 1 (got {self.ratio:g})")
        return self


class ChangeGuardSpec(Spec):
    """While a change rolls out, the selected SLOs are also checked on change windows."""

    slos: list[str] = Field(default_factory=list, description="SLO names it watches")
    labels: LabelNames = Field(
        default_factory=dict, description="It also watches every SLO carrying all these labels"
    )
    guard_window: Annotated[str, BeforeValidator(at_most("1d"))] = Field(
        "30m", description="A change arms the guard while in flight and this long after it began"
    )
    windows: list[ChangeWindowSpec] = Field(
        default_factory=_default_windows,
        description="Change window pairs: shorter windows and lower factors than the workbook's",
    )
    baseline: BaselineSpec = BaselineSpec()
    min_events: int | None = Field(
        None,
        ge=0,
        description="Events needed in a pair's long window before it may fire "
        "(default: the SLO's min_events)",
    )
    playbook: str = Field("halt-change", description="The playbook it proposes for the change")

    @model_validator(mode="after")
    def _check(self) -> ChangeGuardSpec:
        if not self.slos and not self.labels:
            raise ValueError(
                "selects no SLO; give slos (names) or labels (e.g. {tier: control-plane})"
            )
        if not self.windows:
            raise ValueError("windows: must not be empty; give at least one {long, short, factor}")
        return self
