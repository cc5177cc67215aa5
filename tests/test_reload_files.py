"""A mounted ConfigMap changes by swapping its ``..data`` symlink (the kubelet's atomic
writer); guardian notices through the files' contents."""

from __future__ import annotations

import os
from pathlib import Path

from guardian.config import load_config
from guardian.daemon import _fingerprint, _watched

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
