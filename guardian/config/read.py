"""Read one YAML document without letting the file hang, flood or crash guardian.

Input: a path. Output: the parsed document (any YAML value), or ``ConfigErrors`` holding one
line that names the file and the fix. Refused before anything is built from it: a path that
is not a regular file (a FIFO, a device such as ``/dev/zero`` behind a symlink, a directory),
a file larger than ``MAX_BYTES`` (checked with ``fstat`` and by never reading more than
``MAX_BYTES + 1`` bytes), bytes that are not UTF-8, nesting deeper than ``MAX_DEPTH``, more
than ``MAX_VALUES`` values once aliases are expanded (a "billion laughs"), an alias inside
the value it names, and a key given twice in one mapping. Also ``shown``: a value written
for an error message, cut so that a huge input never becomes a huge message.

Called by ``guardian.config.load.read_document`` (config and playbook files, so also the
daemon's reload), and by the daemon's file watch (``read_bytes``).
"""

from __future__ import annotations

import os
import reprlib
import stat
from pathlib import Path
from typing import Any

import yaml

from guardian.errors import ConfigError, ConfigErrors

MAX_BYTES = 1 << 20
"""A config or playbook file holds at most 1 MiB."""
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
    except yaml.MarkedYAMLError as exc:
        raise _not_yaml(file, exc.problem_mark, exc.problem or str(exc)) from None
    except yaml.YAMLError as exc:
        raise _not_yaml(file, None, str(exc)) from None
    except RecursionError:  # the composer recurses once per level
        raise _too_deep(file) from None
    finally:
        loader.dispose()


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader; a scalar it cannot build is a YAML error on its line."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            # an int past Python's 4300 digits, a date like 2026-13-45
            reason = "more than 4300 digits" if "4300 digits" in str(exc) else str(exc)
            raise yaml.constructor.ConstructorError(
                None, None, f"{shown(node.value, 40)} is not a value: {reason}", node.start_mark
            ) from None


def read_bytes(file: Path) -> bytes:
    """The bytes of a regular file of at most ``MAX_BYTES``; ``ConfigErrors`` otherwise.

    Opening never waits for a FIFO's writer, and no more than ``MAX_BYTES + 1`` bytes are
    read, whatever the file claims or becomes.
    """
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise _error(f"{file}: cannot read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _error(f"{file}: not a regular file ({_kind(info.st_mode)}); give a YAML file")
        if info.st_size > MAX_BYTES:
            raise _too_large(file, info.st_size)
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_BYTES:
            chunk = os.read(fd, MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_BYTES:
            raise _too_large(file, size)
        return b"".join(chunks)
    except OSError as exc:
        raise _error(f"{file}: cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a file")


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


def _check_nodes(file: Path, root: yaml.Node) -> None:
    """Depth, expanded size, self-reference and duplicate keys, without expanding anything.

    An iterative walk over the composed node graph: an alias is the node it names, so each
    node is visited once and its expanded size and depth are summed from its children's.
    """
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, str, bool]] = [(root, "", False)]
    while stack:
        node, path, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children_done:
            open_nodes.discard(key)
            size[key] = 1 + sum(size[id(c)] for c, _ in children)
            height[key] = 1 + max((height[id(c)] for c, _ in children), default=0)
            if height[key] > MAX_DEPTH:
                raise _too_deep(file)
            if size[key] > MAX_VALUES:
                raise _too_many(file, len(size) + len(open_nodes))
            continue
        if key in size:
            continue
        open_nodes.add(key)
        if isinstance(node, yaml.MappingNode):
            _unique_keys(file, node, path)
        stack.append((node, path, True))
        for child, step in reversed(children):
            if id(child) in open_nodes:
                raise _error(
                    f"{file}: {_join(path, step)}: an alias refers to a value that holds it "
                    f"(line {child.start_mark.line + 1}); write the value out"
                )
            if id(child) not in size:
                stack.append((child, _join(path, step), False))


def _children(node: yaml.Node) -> list[tuple[yaml.Node, str]]:
    if isinstance(node, yaml.SequenceNode):
        return [(child, f"[{index}]") for index, child in enumerate(node.value)]
    if isinstance(node, yaml.MappingNode):
        pairs: list[tuple[yaml.Node, str]] = []
        for key, value in node.value:
            name = _cut(key.value, 40) if isinstance(key, yaml.ScalarNode) else "?"
            pairs += [(key, name), (value, name)]
        return pairs
    return []


def _join(path: str, step: str) -> str:
    if step.startswith("["):
        return f"{path}{step}"
    return f"{path}: {step}" if path else step


def _unique_keys(file: Path, node: yaml.MappingNode, path: str) -> None:
    seen: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        line = key.start_mark.line + 1
        ident = (key.tag, key.value)
        if ident in seen:
            where = f"{path}: " if path else ""
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


def _too_large(file: Path, size: int) -> ConfigErrors:
    return _error(
        f"{file}: too large ({size} bytes); a config or playbook file holds at most 1 MiB"
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
