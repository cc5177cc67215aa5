"""Size limits of guardian's own code: files, functions and classes.

A file over 300 lines, a function over 50 or a class over 250 is reported with its place and
its size, and the exit code is 1. ``guardian/testing`` (test support) is left out. Run by
``make check``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

FILE_LINES = 300
FUNCTION_LINES = 50
CLASS_LINES = 250


def problems(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    found = []
    lines = len(text.splitlines())
    if lines > FILE_LINES:
        found.append(f"{path}: {lines} lines (at most {FILE_LINES} per file)")
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            limit, what = FUNCTION_LINES, "function"
        elif isinstance(node, ast.ClassDef):
            limit, what = CLASS_LINES, "class"
        else:
            continue
        size = (node.end_lineno or node.lineno) - node.lineno + 1
        if size > limit:
            found.append(
                f"{path}:{node.lineno}: {what} {node.name} has {size} lines (at most {limit})"
            )
    return found


def main(roots: list[str]) -> int:
    found = [
        problem
        for root in roots
        for path in sorted(Path(root).rglob("*.py"))
        if "testing" not in path.parts
        for problem in problems(path)
    ]
    for problem in found:
        print(problem)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["guardian"]))
