"""What the daemon watches to reload, and the checked loading of a new config.

Input: the ``-c`` path and the running config. Output: the files whose change reloads
(``watched``), a digest of their contents (``fingerprint``), and a new config with its
playbooks or the one line that says why they are refused (``load_checked``). Called by
``guardian.app.daemon.run`` (the watch job and ``Daemon.reload``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from guardian.app.wiring import playbooks_of
from guardian.config import Config, load_config
from guardian.config.files import read_bytes
from guardian.errors import ConfigErrors, GuardianError
from guardian.playbooks import Playbook


def watched(root: str, config: Config) -> list[Path]:
    """The files whose change reloads: the config (every YAML file of its directory) and the
    playbooks."""
    top = Path(root)
    files = sorted(top.glob("*.y*ml")) if top.is_dir() else [top]
    files += [Path(f) for f in config.files]
    for entry in config.policy.playbook_paths:
        path = Path(entry)
        files += (
            sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")) if path.is_dir() else [path]
        )
    return files


def fingerprint(files: list[Path]) -> str:
    """A digest of the files' contents, read as the loader reads them: a FIFO, a device or a
    file past the size cap is digested as its one-line refusal, never read."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path).encode())
        try:
            digest.update(read_bytes(path))
        except ConfigErrors as exc:
            digest.update(exc.message.encode())
    return digest.hexdigest()


def load_checked(root: str) -> tuple[Config, dict[str, Playbook]] | str:
    """The config at ``root`` and its playbooks, read and checked in full (regular files,
    size, aliases, depth, every field); or, whatever the files hold, why not: the first
    line of the problem and how many more there are."""
    try:
        config = load_config(root)
        return config, playbooks_of(config)
    except Exception as exc:  # whatever the files hold, the running config stays
        if isinstance(exc, GuardianError):
            text = exc.message
        else:
            text = f"{type(exc).__name__}: {str(exc)[:200]}"
        lines = text.splitlines() or [type(exc).__name__]
        first, more = lines[0], len(lines) - 1
        return f"{first}{f' (and {more} more)' if more else ''}"
