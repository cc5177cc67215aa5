"""The bundled incident's TSDB blocks for tests: the cache ``make demo`` and
``bench/detection.py`` fill (``examples/incident-2024-12-11/demo.py``'s ``_blocks``, keyed by
a hash of ``generate.py``, under ``$GUARDIAN_CACHE`` or ``~/.cache/guardian``), built on first
use and copied, so a test's Prometheus never writes into the cache."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "incident-2024-12-11"


def cached_blocks() -> Path:
    """The cached blocks themselves, generated and backfilled first if missing (about a
    minute; ``demo._blocks`` holds a file lock, so parallel workers build them once)."""
    spec = importlib.util.spec_from_file_location("incident_demo", EXAMPLE / "demo.py")
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = demo
    spec.loader.exec_module(demo)
    cache = Path(os.environ.get("GUARDIAN_CACHE") or "~/.cache/guardian").expanduser()
    blocks: Path = demo._blocks(cache)
    return blocks


def incident_tsdb(target: Path) -> Path:
    """A copy of the incident's blocks (2024-12-09 .. 12-11 PST, 1-minute samples) at
    ``target``, so a test's Prometheus never writes into the cache; copied in seconds once
    ``cached_blocks`` has built them."""
    shutil.copytree(cached_blocks(), target)
    return target


if __name__ == "__main__":  # make test builds them before the workers start
    cached_blocks()
