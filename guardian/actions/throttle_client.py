"""``throttle-client``: put one client into a small, limited API Priority and Fairness level.

Input: ``ThrottleClientParams`` (a service account, user or group). Output: a ``Plan`` that
creates a PriorityLevelConfiguration (``Limited``, few shares, nothing lent, excess rejected
with 429 or queued briefly) and a FlowSchema matching every request of that subject ahead of
the built-in schemas. Undo deletes both. The Kubernetes-native "block the traffic that
drowns the API servers". A protected subject (``guardian.actions.protected``: kubelets,
control-plane components, kube-system service accounts, everyone, guardian itself, and what
``policy.protected_subjects`` adds) is refused with ``Refused`` before any change is sent, in
a plan, a dry run and a playbook run alike. Guardian itself is known from one SelfSubjectReview
per client (``protected.whoami``); while that is unknown every subject is refused, since
guardian cannot tell it apart from itself. Given APF's top talkers (``talkers``: what
``guardian.planning.talkers`` ranked, as a trigger context carries them), the subject is
throttled only when it includes one of the first ``top`` (default 3), and never when that
talker is protected: the refusal names the actual top talkers
(``guardian.actions.throttle_talkers``, checked before anything is sent).
``require_top_talker`` refuses a plan made without talkers. Reached, in guardian, only
through ``guardian.actions.CATALOGUE`` (params, ``plan``, ``verify``).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from guardian.actions import protected
from guardian.actions.base import BUILT_IN, JSON, Change, Guardrails, KubeAPI, Plan, Refused, dig
from guardian.actions.throttle_talkers import (
    TalkerRefused,
    TalkerSeen,
    protected_talker,
    talker_notes,
    talker_refusal,
    target,
    user_form,
)

API = "/apis/flowcontrol.apiserver.k8s.io/v1"
# Below every built-in schema that could match an ordinary client (system-nodes is 500),
# above exempt (1) and probes (2).
PRECEDENCE = 300


class ThrottleClientParams(BaseModel):
    """Whom to throttle, and how hard."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: Literal["serviceaccount", "user", "group"]
    name: str
    namespace: str | None = Field(None, description="Required for a service account")
    shares: int = Field(1, ge=1, le=100, description="nominalConcurrencyShares")
    queue: bool = Field(False, description="Queue a little instead of rejecting at once")
    talkers: tuple[TalkerSeen, ...] | None = Field(
        None, description="APF's top talkers, most first: throttle only one of the first `top`"
    )
    top: int = Field(3, ge=1, le=50, description="How many top talkers may be throttled")
    require_top_talker: bool = Field(
        False, description="Refuse when no talkers are given (APF could not be read)"
    )

    @model_validator(mode="after")
    def _namespace(self) -> ThrottleClientParams:
        if self.subject == "serviceaccount" and not self.namespace:
            raise ValueError("namespace: required for a service account")
        return self


def names(params: ThrottleClientParams) -> str:
    """The object name shared by the FlowSchema and the priority level."""
    raw = f"guardian-throttle-{params.subject}-{params.namespace or ''}-{params.name}"
    return re.sub(r"[^a-z0-9.-]+", "-", raw.lower()).replace("--", "-").strip("-")[:253]


def _subject(params: ThrottleClientParams) -> JSON:
    if params.subject == "serviceaccount":
        if not params.namespace:
            raise ValueError("namespace: required for a service account")
        return {
            "kind": "ServiceAccount",
            "serviceAccount": {"name": params.name, "namespace": params.namespace},
        }
    if params.subject == "user":
        return {"kind": "User", "user": {"name": params.name}}
    return {"kind": "Group", "group": {"name": params.name}}


def refusal(
    params: ThrottleClientParams,
    identity: protected.Identity | None,
    extra: tuple[str, ...] = (),
) -> str | None:
    """The one-line reason ``params`` names a protected subject, or ``None``."""
    kind, name = user_form(params)
    reason = protected.protected(kind, name, identity, extra)
    if reason is None:
        return None
    return (
        f"throttle-client: subject {target(params)} is protected ({reason}); "
        "guardian never throttles it"
    )


def _refuse_protected(kube: KubeAPI, params: ThrottleClientParams, guardrails: Guardrails) -> None:
    """``Refused`` for a protected subject, ``TalkerRefused`` when the top talkers forbid it,
    ``Refused`` while guardian's own identity is unknown.

    Guardian's own identity is asked of the API server (one SelfSubjectReview) only when the
    subject is not already refused by the lists or the talkers."""
    extra = guardrails.protected_subjects
    reason = protected_talker(params, extra) or refusal(params, None, extra)
    by_talkers = "" if reason else talker_refusal(params, extra)
    if by_talkers:
        raise TalkerRefused(by_talkers)
    identity, unknown = (None, "") if reason else protected.whoami(kube)
    reason = reason or refusal(params, identity, guardrails.protected_subjects)
    if not reason and unknown:
        reason = (
            f"throttle-client: {unknown}; guardian throttles no one it cannot tell apart "
            "from itself: let it create selfsubjectreviews (authentication.k8s.io)"
        )
    if reason:
        raise Refused(reason)


def _metadata(name: str) -> JSON:
    return {"name": name, "labels": {"app.kubernetes.io/managed-by": "guardian"}}


def priority_level(params: ThrottleClientParams) -> JSON:
    """The ``Limited`` PriorityLevelConfiguration: few shares, nothing lent, excess refused."""
    response: JSON = {"type": "Reject"}
    if params.queue:
        response = {
            "type": "Queue",
            "queuing": {"queues": 4, "handSize": 1, "queueLengthLimit": 10},
        }
    return {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "PriorityLevelConfiguration",
        "metadata": _metadata(names(params)),
        "spec": {
            "type": "Limited",
            "limited": {
                "nominalConcurrencyShares": params.shares,
                "lendablePercent": 0,
                "borrowingLimitPercent": 0,
                "limitResponse": response,
            },
        },
    }


def flow_schema(params: ThrottleClientParams) -> JSON:
    """The FlowSchema sending every request of the subject to its priority level."""
    name = names(params)
    everything = {
        "verbs": ["*"],
        "apiGroups": ["*"],
        "resources": ["*"],
        "clusterScope": True,
        "namespaces": ["*"],
    }
    return {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": _metadata(name),
        "spec": {
            "priorityLevelConfiguration": {"name": name},
            "matchingPrecedence": PRECEDENCE,
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [
                {
                    "subjects": [_subject(params)],
                    "resourceRules": [everything],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                }
            ],
        },
    }


def plan(kube: KubeAPI, params: ThrottleClientParams, guardrails: Guardrails = BUILT_IN) -> Plan:
    """The priority level and flow schema to create; ``Refused`` for a protected subject."""
    _refuse_protected(kube, params, guardrails)
    name, subject = names(params), target(params)
    level, schema = priority_level(params), flow_schema(params)
    return Plan(
        "throttle-client",
        subject,
        (
            Change(
                "create",
                f"{API}/prioritylevelconfigurations",
                level,
                f"create priority level {name} ({params.shares} share(s), "
                f"{'queue' if params.queue else 'reject'} the excess)",
                after=level,
                undo=Change(
                    "delete",
                    f"{API}/prioritylevelconfigurations/{name}",
                    None,
                    f"delete priority level {name}",
                ),
            ),
            Change(
                "create",
                f"{API}/flowschemas",
                schema,
                f"create flow schema {name} (precedence {PRECEDENCE}) for {subject}",
                after=schema,
                undo=Change(
                    "delete", f"{API}/flowschemas/{name}", None, f"delete flow schema {name}"
                ),
            ),
        ),
        talker_notes(params),
    )


def verify(kube: KubeAPI, plan_: Plan) -> list[str]:
    """Both objects exist and the flow schema points at an existing level."""
    name = plan_.changes[0].body["metadata"]["name"]
    problems = []
    if not kube.exists(f"{API}/prioritylevelconfigurations/{name}"):
        problems.append(f"priority level {name} missing")
    schema = (
        kube.get(f"{API}/flowschemas/{name}") if kube.exists(f"{API}/flowschemas/{name}") else None
    )
    if schema is None:
        problems.append(f"flow schema {name} missing")
    else:
        for condition in dig(schema, "status", "conditions") or []:
            if condition.get("type") == "Dangling" and condition.get("status") == "True":
                problems.append(f"flow schema {name} is dangling")
    return problems
