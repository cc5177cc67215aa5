"""Whom guardian never throttles: built-in protected subjects, configured ones, and itself.

Input: a throttle-client subject as the API server names it (``user`` or ``group`` and a
name; a service account is the user ``system:serviceaccount:NS:NAME``), guardian's own
identity (``whoami``: a SelfSubjectReview, so it is the identity of the very client that
would apply the plan) and extra entries from ``policy.protected_subjects``. Output: the
reason a subject is protected, or ``None``; and whether a subject includes a user seen by
API Priority and Fairness (``covers``). Called by ``throttle_client`` (``plan``, and its check
against the top talkers) and ``guardian.planning.talkers`` (which talkers are protected); the
built-in list cannot be emptied, configuration only adds to it.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

from guardian.actions.base import KubeAPI, dig
from guardian.errors import GuardianError

Kind = Literal["user", "group"]
SA_USER = "system:serviceaccount:"
SA_GROUP = "system:serviceaccounts:"
REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


@dataclass(frozen=True)
class Rule:
    """Subjects matching ``pattern`` (``*`` matches anything) are never throttled."""

    kind: Kind
    pattern: str
    reason: str


BUILTIN: tuple[Rule, ...] = (
    Rule("group", "system:masters", "cluster administrators"),
    Rule("group", "system:nodes", "kubelets"),
    Rule("user", "system:node:*", "a kubelet"),
    Rule("user", "system:kube-*", "a control-plane component"),
    Rule("group", "system:kube-*", "control-plane components"),
    Rule("user", "system:apiserver", "the API server itself"),
    Rule("group", "system:authenticated", "every authenticated client"),
    Rule("group", "system:unauthenticated", "every anonymous client"),
    Rule("user", "system:anonymous", "anonymous clients"),
    Rule("group", "system:serviceaccounts", "every service account"),
    Rule("group", "system:serviceaccounts:kube-system", "kube-system service accounts"),
    Rule("user", "system:serviceaccount:kube-system:*", "a kube-system service account"),
)


@dataclass(frozen=True)
class Identity:
    """Who guardian is to the API server."""

    username: str
    groups: tuple[str, ...] = ()

    def rules(self) -> tuple[Rule, ...]:
        """Guardian's user and every group it is in (throttling one would throttle it)."""
        own = Rule("user", self.username, "guardian's own identity")
        return (own, *(Rule("group", g, "guardian itself is in it") for g in self.groups))


def parse(entry: str) -> Rule:
    """``user:NAME``, ``group:NAME`` or ``serviceaccount:NAMESPACE/NAME`` (``*`` globs)."""
    kind, _, name = entry.partition(":")
    reason = f"listed in policy.protected_subjects as {entry}"
    if kind == "serviceaccount":
        namespace, _, account = name.partition("/")
        return Rule("user", f"{SA_USER}{namespace}:{account}", reason)
    if kind not in ("user", "group"):
        raise ValueError(f"{entry!r}: must be user:NAME, group:NAME or serviceaccount:NS/NAME")
    return Rule("user" if kind == "user" else "group", name, reason)


def protected(
    kind: Kind, name: str, identity: Identity | None = None, extra: tuple[str, ...] = ()
) -> str | None:
    """Why the subject ``kind``/``name`` must not be throttled, or ``None`` when it may be.

    ``name`` may be ``*`` (APF: every user or group) or end in ``:*`` (every service account
    of a namespace); a subject is protected when it could match a protected one."""
    if name == "*":
        return f"every {kind}, the protected ones included"
    rules = (*BUILTIN, *(identity.rules() if identity else ()), *(parse(e) for e in extra))
    for rule in rules:
        if rule.kind == kind and _overlap(rule.pattern, name):
            return rule.reason
    if name.startswith("system:") and not name.startswith(SA_USER if kind == "user" else SA_GROUP):
        return "a name Kubernetes reserves (system:)"
    return None


def covers(kind: Kind, name: str, user: str) -> bool:
    """True when the subject ``kind``/``name`` (``*`` globs) includes the user ``user``.

    For a group this is known only where Kubernetes names the members: ``system:nodes``
    (``system:node:*``), ``system:serviceaccounts`` and ``system:serviceaccounts:NS`` (the
    service accounts, of namespace NS); any other group's members are unknown (``False``)."""
    if kind == "user":
        return fnmatchcase(user, name)
    if name == "system:nodes":
        return user.startswith("system:node:")
    if name == "system:serviceaccounts":
        return user.startswith(SA_USER)
    if name.startswith(SA_GROUP):
        return fnmatchcase(user, f"{SA_USER}{name.removeprefix(SA_GROUP)}:*")
    return False


def _overlap(pattern: str, name: str) -> bool:
    """True when ``name`` matches ``pattern``, or ``name`` is a pattern covering ``pattern``."""
    return fnmatchcase(name, pattern) or ("*" in name and fnmatchcase(pattern, name))


def whoami(kube: KubeAPI) -> tuple[Identity | None, str]:
    """Guardian's identity to the API server behind ``kube``, or why it is unknown.

    Asked once per client with a SelfSubjectReview (nothing is stored on the server) and
    remembered for that client, so a throttle planned while the API server is overloaded
    costs no extra call."""
    try:
        return _known[kube], ""
    except (KeyError, TypeError):
        pass
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    try:
        review = kube.create(REVIEWS, body)
    except GuardianError as exc:
        return None, f"guardian's own identity is unknown (SelfSubjectReview: {exc.message})"
    info = dig(review, "status", "userInfo") or {}
    username = info.get("username")
    if not username:
        return None, "guardian's own identity is unknown (SelfSubjectReview gave no username)"
    identity = Identity(str(username), tuple(str(g) for g in info.get("groups") or ()))
    with contextlib.suppress(TypeError):  # a client that cannot be weakly referenced
        _known[kube] = identity
    return identity, ""


_known: weakref.WeakKeyDictionary[Any, Identity] = weakref.WeakKeyDictionary()
"""The identity each live client was found to have."""
