"""Patches and the changes that carry them, each with the patch that undoes it.

Input: an object path, what a field is and what it becomes. Output: JSON patches
(``replace_patch``, ``remove_or_replace``) and ``Change`` values whose ``undo`` is the
inverse patch (``undoable``, ``set_spec``). Called by the actions' ``plan`` functions
(``guardian.actions.pause_rollout``, ``.halt_change``, ``.scale_apiserver``, ``.shed_nodes``).
"""

from __future__ import annotations

from typing import Any

from guardian.actions.base import JSON, Change

_SAME: Any = object()


def replace_patch(path: str, value: Any) -> list[JSON]:
    """A JSON patch setting ``path`` to ``value`` (``add`` replaces or creates)."""
    return [{"op": "add", "path": path, "value": value}]


def remove_or_replace(path: str, value: Any) -> list[JSON]:
    """A JSON patch restoring ``path`` to ``value``, removing it when it was absent."""
    if value is None:
        return [{"op": "remove", "path": path}]
    return replace_patch(path, value)


def undoable(
    path: str,
    change: tuple[Any, str],
    undo: tuple[Any, str],
    kind: str = "merge",
    before: Any = None,
    after: Any = None,
) -> Change:
    """A patch of ``path`` (``change``: its body and description) undone by ``undo``, a patch
    of the same type."""
    return Change(
        "patch",
        path,
        change[0],
        change[1],
        kind=kind,
        before=before,
        after=after,
        undo=Change("patch", path, undo[0], undo[1], kind=kind),
    )


def set_spec(
    path: str,
    field: str,
    values: tuple[Any, Any],
    texts: tuple[str, str],
    restore: Any = _SAME,
    batch: int = 0,
) -> Change:
    """A merge patch of ``spec.<field>`` from ``values[0]`` to ``values[1]``, described by
    ``texts[0]``; its undo (``texts[1]``) sets it back to ``restore`` (default: the old value)."""
    old, new = values
    back = old if restore is _SAME else restore
    return Change(
        "patch",
        path,
        {"spec": {field: new}},
        texts[0],
        before={field: old},
        after={field: new},
        undo=Change("patch", path, {"spec": {field: back}}, texts[1]),
        batch=batch,
    )
