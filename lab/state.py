"""The lab's state file: where it lives, which PIDs and ports it started.

Read and written by every ``lab`` command; ``lab down`` stops exactly the PIDs recorded here.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


def lab_dir() -> Path:
    """``$GUARDIAN_LAB_DIR`` or ``~/.cache/guardian/lab/run``."""
    default = Path.home() / ".cache" / "guardian" / "lab" / "run"
    path = Path(os.environ.get("GUARDIAN_LAB_DIR", default)).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def alive(pid: int) -> bool:
    """True when ``pid`` runs (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class LabState:
    """PIDs, ports and command lines of the running lab."""

    directory: Path
    bin: str
    nodes: int
    pids: dict[str, int] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    argv: dict[str, list[str]] = field(default_factory=dict)

    def save(self) -> None:
        """Write ``state.json`` atomically."""
        doc = asdict(self)
        doc["directory"] = str(self.directory)
        tmp = self.directory / "state.json.tmp"
        tmp.write_text(json.dumps(doc, indent=2))
        tmp.replace(self.directory / "state.json")

    @classmethod
    def load(cls, directory: Path) -> LabState | None:
        """The state in ``directory``, or ``None`` when there is none."""
        path = directory / "state.json"
        if not path.exists():
            return None
        doc = json.loads(path.read_text())
        doc["directory"] = Path(doc["directory"])
        return cls(**doc)
