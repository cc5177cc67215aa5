"""Read one YAML document without letting the file hang, flood or crash guardian.

Input: a path. Output: the parsed document (any YAML value), or ``ConfigErrors`` holding one
line that names the file and the fix. The bytes come from ``guardian.config.files.read_bytes``
(a regular file of at most 1 MiB, never waiting on a FIFO); refused here before
anything is built from them: bytes that are not UTF-8, nesting deeper than ``MAX_DEPTH``, more
than ``MAX_VALUES`` values once aliases are expanded (a "billion laughs"), an alias inside the
value it names, and a key given twice in one mapping. Also ``shown``: a value written for an
error message, cut so that a huge input never becomes a huge message.

Called by ``guardian.config.load.read_document`` (config and playbook files, so also the
daemon's reload); ``shown`` also by ``guardian.config`` (``messages``, ``spec``, ``build``,
``checks``) and ``guardian.playbooks`` (``spec``, ``load``) for their messages.
"""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from guardian.config.files import read_bytes
from guardian.errors import ConfigError, ConfigErrors

MAX_DEPTH = 64
"""Mappings and lists nest at most this deep (guardian's own specs need fewer than 10)."""
MAX_VALUES = 100_000
"""Values (scalars, lists, mappings) in one document, counting each alias as what it names."""


def read_yaml(file: Path) -> Any:
    """The one YAML document in ``file``, checked as the module docstring says."""
    text = _decode(file, read_bytes(file))
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(file, node)
        return loader.construct_document(node)
    except _TooDeep:
        raise _too_deep(file) from None
    except _TooMany:
        raise _too_many(file, MAX_VALUES + 1) from None
    except yaml.MarkedYAMLError as exc:
        if exc.problem == "exceeded maximum nesting depth":  # libyaml's own limit
            raise _too_deep(file) from None
        problem = exc.problem or str(exc)
        if exc.context and problem.startswith("but "):  # "expected X, but found Y"
            problem = f"{exc.context}, {problem}"
        raise _not_yaml(file, exc.problem_mark, problem) from None
    except yaml.YAMLError as exc:
        raise _not_yaml(file, None, str(exc)) from None
    finally:
        loader.dispose()


class _Checked(Composer, SafeConstructor):
    """PyYAML's composer and safe constructor, counting as they go.

    Composing stops at the first node past ``MAX_VALUES`` or deeper than ``MAX_DEPTH`` (so a
    1 MiB list of numbers costs a fraction of a second, not minutes and 500 MB); a scalar
    the constructor cannot build is a YAML error on its line.
    """

    composed = 0
    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        self.composed += 1
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _TooDeep
            if self.composed > MAX_VALUES:
                raise _TooMany
            return super().compose_node(parent, index)  # type: ignore[arg-type]
        finally:
            self.depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            # an int past Python's 4300 digits, a date like 2026-13-45
            reason = "more than 4300 digits" if "4300 digits" in str(exc) else str(exc)
            raise yaml.constructor.ConstructorError(
                None, None, f"{shown(node.value, 40)} is not a value: {reason}", node.start_mark
            ) from None


class _TooDeep(Exception):
    pass


class _TooMany(Exception):
    pass


try:
    from yaml._yaml import CParser

    class _Loader(_Checked, CParser, Resolver):
        """libyaml scans and parses (in C, ten times faster); composing stays in Python."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            Composer.__init__(self)

except ImportError:  # pragma: no cover - PyYAML built without libyaml

    class _Loader(_Checked, yaml.SafeLoader):  # type: ignore[no-redef]
        """Pure-Python PyYAML."""


def _decode(file: Path, data: bytes) -> str:
    for bom, name in (
        (b"\xff\xfe\x00\x00", "UTF-32"),
        (b"\x00\x00\xfe\xff", "UTF-32"),
        (b"\xff\xfe", "UTF-16"),
        (b"\xfe\xff", "UTF-16"),
    ):
        if data.startswith(bom):
            raise _error(
                f"{file}: not UTF-8 text ({name}, by its byte order mark); save it as UTF-8"
            )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise _error(
            f"{file}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
            "save it as UTF-8"
        ) from None


_Trail = tuple[str, "_Trail"] | None
"""The steps from a node up to the root (``("[0]", ("slos", None))``), joined on error only."""


def _check_nodes(file: Path, root: yaml.Node) -> None:
    """Depth, expanded size, self-reference and duplicate keys, without expanding anything.

    An iterative walk over the composed node graph: an alias is the node it names, so each
    node is visited once and its expanded size and depth are summed from its children's.
    """
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, _Trail, list[yaml.Node] | None]] = [(root, None, None)]
    while stack:
        node, trail, done = stack.pop()
        key = id(node)
        if done is not None:  # every child counted: sum them
            open_nodes.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in done)
            height[key] = 1 + max((height[id(c)] for c in done), default=0)
            if height[key] > MAX_DEPTH:
                raise _too_deep(file)
            if size[key] > MAX_VALUES:
                raise _too_many(file, len(size) + len(open_nodes))
            continue
        if key in size:
            continue
        if isinstance(node, yaml.ScalarNode):
            size[key] = height[key] = 1
            continue
        children, steps = _children(node)
        if isinstance(node, yaml.MappingNode):
            _unique_keys(file, node, trail)
        open_nodes.add(key)
        stack.append((node, trail, children))
        for child, step in zip(reversed(children), reversed(steps), strict=True):
            if id(child) in open_nodes:
                raise _error(
                    f"{file}: {_path((step, trail))}: an alias refers to a value that holds it "
                    f"(line {child.start_mark.line + 1}); write the value out"
                )
            if id(child) not in size:
                stack.append((child, (step, trail), None))


def _children(node: yaml.Node) -> tuple[list[yaml.Node], list[str]]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value), [f"[{index}]" for index in range(len(node.value))]
    children: list[yaml.Node] = []
    steps: list[str] = []
    for key, value in node.value:
        name = _cut(key.value, 40) if isinstance(key, yaml.ScalarNode) else "?"
        children += [key, value]
        steps += [name, name]
    return children, steps


def _path(trail: _Trail) -> str:
    steps: list[str] = []
    while trail is not None:
        step, trail = trail
        steps.append(step)
    text = ""
    for step in reversed(steps):
        text = f"{text}{step}" if step.startswith("[") or not text else f"{text}: {step}"
    return text


def _unique_keys(file: Path, node: yaml.MappingNode, trail: _Trail) -> None:
    seen: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        line = key.start_mark.line + 1
        ident = (key.tag, key.value)
        if ident in seen:
            where = f"{_path(trail)}: " if trail is not None else ""
            raise _error(
                f"{file}: {where}key {shown(key.value, 40)} given twice (lines {seen[ident]} "
                f"and {line}); keep one"
            )
        seen[ident] = line


def _too_deep(file: Path) -> ConfigErrors:
    return _error(f"{file}: nested more than {MAX_DEPTH} levels deep; flatten it")


def _too_many(file: Path, distinct: int) -> ConfigErrors:
    if distinct > MAX_VALUES:
        return _error(f"{file}: more than {MAX_VALUES} values; split it into several files")
    return _error(
        f"{file}: its aliases expand to more than {MAX_VALUES} values; write the values out "
        "or use fewer aliases"
    )


def _not_yaml(file: Path, mark: Any, problem: str) -> ConfigErrors:
    where = f"line {mark.line + 1}: " if mark is not None else ""
    first = problem.splitlines()[0] if problem else "unreadable"
    return _error(f"{file}: {where}not valid YAML: {first}")


def _error(message: str) -> ConfigErrors:
    return ConfigErrors([ConfigError(message)])


_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = 4
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlong = 40


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` for a message, at most about ``limit`` characters whatever ``value`` is."""
    if isinstance(value, str) and len(value) <= limit:
        return repr(value)
    if isinstance(value, str):
        return repr(value[: limit - 5]) + "…"
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
