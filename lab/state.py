"""The lab's state file: where each lab lives, which PIDs and ports it started.

Read and written by every ``lab`` command (``labctl``, ``components``, ``nodes``, ``load``,
``fleet``); ``lab down`` stops exactly the PIDs recorded here. The default lab (``--name lab``)
lives in ``$GUARDIAN_LAB_DIR`` itself, a named one in ``$GUARDIAN_LAB_DIR/labs/NAME``, the
fleet query layer in ``$GUARDIAN_LAB_DIR/fleet`` (``tests/test_lab_fleet.py``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_NAME = "lab"
NAME = re.compile(r"[a-z]([-a-z0-9]{0,30}[a-z0-9])?")
"""A lab's name: a DNS label of at most 32 characters, as it becomes the ``cluster`` label."""


class LabError(Exception):
    """A one-line failure of a ``lab`` command, with its exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def lab_root() -> Path:
    """``$GUARDIAN_LAB_DIR`` or ``~/.cache/guardian/lab/run``: the default lab's directory."""
    default = Path.home() / ".cache" / "guardian" / "lab" / "run"
    path = Path(os.environ.get("GUARDIAN_LAB_DIR", default)).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_name(name: str) -> str:
    """``name`` when it is a short DNS label; a ``LabError`` (exit 2) naming the fix otherwise."""
    if not NAME.fullmatch(name):
        raise LabError(
            f"--name {name!r}: a lab name is lowercase letters, digits and '-', starts with a "
            "letter, at most 32 characters (e.g. --name east)",
            2,
        )
    return name


def lab_dir(name: str = DEFAULT_NAME) -> Path:
    """The directory of lab ``name``: the root for the default lab, ``labs/NAME`` otherwise."""
    root = lab_root()
    return root if check_name(name) == DEFAULT_NAME else root / "labs" / name


def build(*components: str) -> Path:
    """Run ``lab/build.sh`` (its progress lines go to stderr); the binaries' directory."""
    script = Path(__file__).resolve().parent / "build.sh"
    done = subprocess.run(
        [str(script), *components], check=False, stdout=subprocess.PIPE, text=True
    )
    if done.returncode != 0:
        raise LabError(
            f"{' '.join(['lab/build.sh', *components])} failed with exit code {done.returncode}"
        )
    return Path(done.stdout.strip().splitlines()[-1])


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
    name: str = DEFAULT_NAME
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


def rss_kib(pid: int) -> int:
    """The resident memory of ``pid`` in KiB (``VmRSS``), 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
