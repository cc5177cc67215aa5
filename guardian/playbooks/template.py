"""Playbook templates: ``{{ suspects[0].name }}`` → a value from the trigger's context.

Input: a parameter value from a playbook (any JSON value; strings may hold ``{{ path }}``)
and a context mapping. Output: the resolved value. A string that is exactly one template
takes the type of what it names (a number stays a number); templates inside a longer string
are written as text. Paths are names, ``.field`` and ``[index]`` only: nothing is evaluated.
Called by ``guardian.playbooks.load`` (syntax and roots, at load time), by
``guardian.planning.plans`` (a step's parameters) and by ``guardian.executor.shell``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

ROOTS = ("suspects", "slo", "params", "offender", "change", "talkers")
"""What a template may start with: ranked suspects, the burning SLO, ``--set`` values, the
client to throttle (``offender.namespace``, ``offender.name``), the change the burn is blamed
on (``change.kind``, ``change.namespace``, ``change.name``, ...) and the API server's top
talkers (``talkers[0].user``)."""

_TEMPLATE = re.compile(r"\{\{\s*+([^{}\s]*+(?:\s++[^{}\s]++)*+)\s*+\}\}")
"""Possessive, braces excluded: linear time whatever the string (no backtracking blow-up)."""
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")
_ROOT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TemplateError(ValueError):
    """A template names something that does not exist, or is malformed."""


class Unresolved(TemplateError):
    """A well-formed template whose value this run's context does not have (no suspect, no
    change, no offender): the step's target is unknown, not wrong."""


def paths(value: Any) -> list[str]:
    """Every template path inside ``value`` (strings, lists and mappings searched)."""
    if isinstance(value, str):
        return [m.group(1) for m in _TEMPLATE.finditer(value)]
    if isinstance(value, list):
        return [p for item in value for p in paths(item)]
    if isinstance(value, dict):
        return [p for item in value.values() for p in paths(item)]
    return []


def check(path: str) -> None:
    """Raise ``TemplateError`` unless ``path`` is well formed and starts at a known root."""
    root, steps = _parse(path)
    del steps
    if root not in ROOTS:
        raise TemplateError(f"{{{{ {path} }}}}: unknown name {root!r} (known: {', '.join(ROOTS)})")


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """``value`` with every template replaced from ``context``."""
    if isinstance(value, list):
        return [render(item, context) for item in value]
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    if not isinstance(value, str):
        return value
    whole = _TEMPLATE.fullmatch(value.strip())
    if whole:
        return lookup(whole.group(1), context)
    return _TEMPLATE.sub(lambda m: str(lookup(m.group(1), context)), value)


def lookup(path: str, context: Mapping[str, Any]) -> Any:
    """The value ``path`` names in ``context``."""
    root, steps = _parse(path)
    if root not in context:
        raise Unresolved(f"{{{{ {path} }}}}: nothing called {root!r} in this run")
    node: Any = context[root]
    walked = root
    for step in steps:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                size = len(node) if isinstance(node, list) else 0
                raise Unresolved(f"{{{{ {path} }}}}: {walked} has {size} entries")
            node = node[step]
            walked += f"[{step}]"
        else:
            if not isinstance(node, Mapping) or step not in node:
                raise Unresolved(f"{{{{ {path} }}}}: {walked} has no field {step!r}")
            node = node[step]
            walked += f".{step}"
    return node


def _parse(path: str) -> tuple[str, list[str | int]]:
    root = _ROOT.match(path)
    if root is None:
        raise TemplateError(f"{{{{ {path} }}}}: must start with a name, e.g. suspects[0].name")
    steps: list[str | int] = []
    pos = root.end()
    while pos < len(path):
        step = _STEP.match(path, pos)
        if step is None:
            raise TemplateError(
                f"{{{{ {path} }}}}: only .field and [index] may follow a name (at {path[pos:]!r})"
            )
        steps.append(step.group(1) if step.group(1) else int(step.group(2)))
        pos = step.end()
    return root.group(0), steps
