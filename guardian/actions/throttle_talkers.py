"""``throttle-client``'s top-talker check: APF's top talkers decide whom it may throttle.

Input: ``ThrottleClientParams`` with ``talkers`` (what ``guardian.planning.talkers`` ranked, as
a trigger context carries them), ``top`` and ``require_top_talker``. Output: why the talkers
forbid the throttle (``protected_talker``: a protected client the subject covers is among
the top talkers; ``talker_refusal``: the subject is not among the first ``top``, or no talkers
are known), and the plan's note of which talker the subject is. ``TalkerRefused`` is the
refusal that depends on the traffic now (a dry run still checks the step:
``guardian.planning.dry_run``). Called by ``guardian.actions.throttle_client``; tests:
tests/test_talkers.py (the refusals), tests/test_staging_dry_run.py and
tests/test_halt_change.py (a dry run's warning).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from guardian.actions import protected
from guardian.actions.base import Refused

if TYPE_CHECKING:
    from guardian.actions.throttle_client import ThrottleClientParams


class TalkerRefused(Refused):
    """Refused by what APF holds now (the subject is not a top talker, or none is known):
    the answer depends on the traffic, so a dry run still sends the step with dryRun=All and
    warns that a run now would refuse it (``guardian.planning.dry_run``)."""


class TalkerSeen(BaseModel):
    """A top talker as ``guardian.planning.talkers.Talker.to_json`` gives it (other fields
    of that record are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    user: str
    share: float = Field(0.0, ge=0.0, le=1.0)
    flow_schema: str = ""
    protected: bool = False
    why: str = ""


def target(params: ThrottleClientParams) -> str:
    """The subject as plans and messages name it: ``serviceaccount NS/NAME``, ``user NAME``."""
    return f"{params.subject} {params.namespace + '/' if params.namespace else ''}{params.name}"


def user_form(params: ThrottleClientParams) -> tuple[protected.Kind, str]:
    """The subject as APF names it: a service account is the user ``system:serviceaccount:…``."""
    if params.subject == "serviceaccount":
        return "user", f"{protected.SA_USER}{params.namespace or ''}:{params.name}"
    return ("user" if params.subject == "user" else "group"), params.name


def talker_refusal(params: ThrottleClientParams, extra: tuple[str, ...] = ()) -> str | None:
    """Why APF's top talkers forbid throttling the subject, or ``None`` when they allow it
    (or none were given and none are required)."""
    if params.talkers is None:
        if not params.require_top_talker:
            return None
        return (
            f"throttle-client: no top talkers known for {target(params)} (APF's dump_requests "
            "was not read); guardian throttles only a client APF shows among the top talkers"
        )
    top = params.talkers[: params.top]
    kind, name = user_form(params)
    if any(protected.covers(kind, name, t.user) for t in top):
        return protected_talker(params, extra) or None
    ranking = ", ".join(f"{t.user} {t.share:.0%}" for t in top) or "APF holds no request"
    lead = ""
    if top and _talker_protection(top[0], extra):
        lead = f"top talker {top[0].user} is protected ({_talker_protection(top[0], extra)}); "
    return (
        f"throttle-client: {lead}{target(params)} is not among the top {params.top} talkers "
        f"({ranking}); not throttling"
    )


def protected_talker(params: ThrottleClientParams, extra: tuple[str, ...] = ()) -> str:
    """Why the subject must not be throttled because a top talker it covers is protected
    (the first such talker; "" when none is)."""
    kind, name = user_form(params)
    for talker in (params.talkers or ())[: params.top]:
        if protected.covers(kind, name, talker.user):
            why = _talker_protection(talker, extra)
            return (
                f"throttle-client: top talker {talker.user} is protected ({why}); not throttling"
                if why
                else ""
            )
    return ""


def _talker_protection(talker: TalkerSeen, extra: tuple[str, ...]) -> str:
    reason = protected.protected("user", talker.user, None, extra)
    return reason or (talker.why or "marked protected" if talker.protected else "")


def talker_notes(params: ThrottleClientParams) -> tuple[str, ...]:
    """Which top talker the subject is, for the plan's record (none without talkers)."""
    kind, name = user_form(params)
    for rank, talker in enumerate((params.talkers or ())[: params.top], 1):
        if protected.covers(kind, name, talker.user):
            held = f"{talker.share:.0%} of what APF holds, flow schema {talker.flow_schema}"
            return (f"top talker {rank}: {talker.user} ({held})",)
    return ()
