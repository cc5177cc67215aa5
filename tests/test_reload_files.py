"""A mounted ConfigMap changes by swapping its ``..data`` symlink (the kubelet's atomic
writer); guardian notices through the files' contents. Bad files dropped into a running
daemon's config directory (an alias bomb, a FIFO, /dev/zero, 50 MB) are refused while it
keeps answering and evaluating."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from guardian.app.daemon.reload import fingerprint as _fingerprint
from guardian.app.daemon.reload import watched as _watched
from guardian.config import load_config
from tests.lab_fixture import eventually
from tests.test_daemon import rig

__all__ = ["rig"]  # the daemon rig fixture (the lab, PostgreSQL, a config directory)

ROOT = Path(__file__).resolve().parent.parent


def _mount(directory: Path, version: str, files: dict[str, str]) -> None:
    """Lay out ``files`` as the kubelet does, as version ``version``."""
    payload = directory / f"..{version}"
    payload.mkdir()
    for name, text in files.items():
        (payload / name).write_text(text)
    link = directory / "..data_tmp"
    link.symlink_to(payload.name)
    os.replace(link, directory / "..data")  # the atomic swap
    for name in files:
        if not (directory / name).is_symlink():
            (directory / name).symlink_to(f"..data/{name}")


def test_a_configmap_update_changes_the_fingerprint(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    prometheus = "version: guardian/v1\nprometheus: {url: 'http://127.0.0.1:9090'}\n"
    slos = (ROOT / "config" / "slos.yaml").read_text()
    _mount(config, "2026_11_25_01", {"prometheus.yaml": prometheus, "slos.yaml": slos})
    loaded = load_config(config)
    assert [Path(f).name for f in loaded.files] == ["prometheus.yaml", "slos.yaml"]
    before = _fingerprint(_watched(str(config), loaded))
    assert before == _fingerprint(_watched(str(config), loaded)), "stable while unchanged"
    _mount(config, "2026_11_25_02", {"prometheus.yaml": prometheus, "slos.yaml": slos})
    assert _fingerprint(_watched(str(config), loaded)) == before, "same contents, same print"
    changed = slos.replace("objective: 99\n", "objective: 99.5\n", 1)
    _mount(config, "2026_11_25_03", {"prometheus.yaml": prometheus, "slos.yaml": changed})
    assert _fingerprint(_watched(str(config), loaded)) != before


def _returns_within(seconds: float, work: Callable[[], object]) -> object:
    """``work()``'s result, failing (not hanging) if it takes longer than ``seconds``."""
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(work()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds}s"
    return result[0]


def test_the_watch_never_reads_a_fifo_a_device_or_a_huge_file(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "guardian.yaml").write_text(
        "version: guardian/v1\nprometheus: {url: 'http://127.0.0.1:9090'}\n"
    )
    loaded = load_config(config)
    before = _fingerprint(_watched(str(config), loaded))
    os.mkfifo(config / "fifo.yaml")
    (config / "zero.yaml").symlink_to("/dev/zero")
    _fifty_megabytes(config / "big.yaml")
    after = _returns_within(30, lambda: _fingerprint(_watched(str(config), loaded)))
    assert after != before, "the new files count as a change: the reload refuses them"


def _fifty_megabytes(path: Path) -> None:
    with path.open("wb") as stream:
        stream.truncate(50 << 20)


def _total(daemon: Any, name: str) -> float:
    """A counter summed over its labels, from the daemon's /metrics."""
    lines = daemon.get("/metrics").text.splitlines()
    return sum(float(x.rsplit(" ", 1)[1]) for x in lines if x.startswith(name + "{"))


@pytest.mark.lab
def test_bad_files_in_a_running_daemon_s_config_leave_it_answering(
    rig: dict[str, Any],
) -> None:
    from tests.test_config_corpus import _bomb

    daemon = rig["start"]("replica-bad-files")
    eventually(daemon.leading, 30, "leader")
    config: Path = rig["config"]
    bomb = "version: guardian/v1\nslos:\n  - name: bomb\n    sli: {coredns_errors: {}}\n"
    bad: dict[str, Callable[[Path], object]] = {
        "bomb.yaml": lambda p: p.write_text(bomb + "    objective:\n" + _bomb("      ")),
        "fifo.yaml": os.mkfifo,
        "zero.yaml": lambda p: p.symlink_to("/dev/zero"),
        "big.yaml": _fifty_megabytes,
    }
    for count, (name, make) in enumerate(bad.items(), start=1):
        make(config / name)

        def refused(at_least: int = count) -> bool:
            return bool(
                daemon.metric('guardian_config_reloads_total{result="refused"}') >= at_least
            )

        eventually(refused, 60, f"{name} refused")
        assert daemon.get("/healthz").status_code == 200, f"alive after {name}"
        (config / name).unlink()
    refusals = [
        json.loads(x)["message"]
        for x in daemon.text().splitlines()
        if "refused, the running config stays" in x
    ]
    assert refusals[0].endswith(
        f"{config / 'bomb.yaml'}: its aliases expand to more than 100000 values; write the "
        "values out or use fewer aliases"
    )
    assert refusals[1].endswith(
        f"{config / 'fifo.yaml'}: not a regular file (a FIFO); give a YAML file"
    )
    assert refusals[2].endswith(
        "zero.yaml: not a regular file (a character device); give a YAML file"
    )
    assert refusals[3].endswith(
        "big.yaml: too large (52428800 bytes); a config or playbook file holds at most 1 MiB"
    )
    evaluated = _total(daemon, "guardian_evaluations_total")
    eventually(
        lambda: _total(daemon, "guardian_evaluations_total") > evaluated, 60, "still evaluating"
    )
    assert daemon.metric('guardian_config_reloads_total{result="ok"}') == 0.0, "old config runs"
    assert daemon.get("/readyz").status_code == 200
    assert daemon.stop(timeout=60) == 0, "SIGTERM is obeyed"
