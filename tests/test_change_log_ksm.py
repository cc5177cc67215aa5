"""The change log read from kube-state-metrics: the bundled incident's workloads and rollouts,
read back by ``guardian.evaluation.change_log.PrometheusChangeLog`` from a real Prometheus."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "examples" / "incident-2024-12-11"
GENERATOR = "examples/incident-2024-12-11/generate.py"
BEFORE_KSM = "b4908e2dc87cafcf8204d99b084ac4afb2de8420"  # the generator before its KSM series


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("incident_generate", HERE / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _generate(script: Path, out: Path, *args: str) -> list[str]:
    cmd = [sys.executable, str(script), "--out", str(out), *args]
    subprocess.run(cmd, check=True, capture_output=True)
    return out.read_text(encoding="ascii").splitlines()


def _is_ksm(line: str) -> bool:
    return line.startswith(("kube_", "# HELP kube_", "# TYPE kube_"))


@pytest.mark.slow
def test_the_api_server_and_coredns_series_are_unchanged(tmp_path: Path) -> None:
    shown = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{BEFORE_KSM}:{GENERATOR}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if shown.returncode != 0:
        pytest.skip(f"git history without {BEFORE_KSM[:7]}: {shown.stderr.strip()}")
    old_script = tmp_path / "generate_before.py"
    old_script.write_text(shown.stdout, encoding="utf-8")
    args = ("--days-before", "1", "--interval", "120")
    old = _generate(old_script, tmp_path / "old.om", *args)
    new = _generate(HERE / "generate.py", tmp_path / "new.om", *args)
    assert not any(_is_ksm(line) for line in old)
    assert sum(1 for line in new if _is_ksm(line)) > 1000, "the new file has KSM series"
    assert [line for line in new if not _is_ksm(line)] == old


def test_a_days_rollouts_do_not_depend_on_the_files_length() -> None:
    generate = _generator()
    short = generate.ksm_rollouts(generate.build_timeline(0, 60), 7)
    long = generate.ksm_rollouts(generate.build_timeline(2, 60), 7)
    day = generate.INCIDENT_DAY.timestamp()
    for cluster, rollouts in short.items():
        assert rollouts, cluster
        assert rollouts == [r for r in long[cluster] if r.start >= day]
        assert len(long[cluster]) > 2 * len(rollouts), "two normal days before it"
