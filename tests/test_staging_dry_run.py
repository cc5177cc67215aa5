"""Staging dry runs: the shipped playbooks checked against a quiet cluster (no change within
``--since``), the target named by hand with ``--set change=`` / ``--set offender=``. A
throttle of a client that is not among APF's top talkers is still sent with dryRun=All, with
a warning that a run now would refuse it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from guardian.clients.kube import Kube
from tests.lab_fixture import ROOT, Lab

pytestmark = pytest.mark.lab

DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


@pytest.fixture(scope="module")
def kube(lab: Lab) -> Kube:
    return Kube.from_kubeconfig(str(lab.directory / "kubeconfig"), qps=50, burst=100)


@pytest.fixture
def config(lab: Lab, tmp_path: Path) -> Path:
    """The lab's config, the shipped pause and throttle playbooks, a SQLite store."""
    books = tmp_path / "playbooks"
    books.mkdir()
    for name in ("pause-suspect-rollout", "throttle-offender"):
        shutil.copy(ROOT / "playbooks" / f"{name}.yaml", books)
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "guardian.yaml").write_text((lab.directory / "guardian.yaml").read_text())
    (directory / "policy.yaml").write_text(
        "version: guardian/v1\n"
        f"policy: {{playbooks: [../playbooks], store: {{url: 'sqlite:///{tmp_path}/g.db'}}}}\n"
    )
    return directory


def _deployment(kube: Kube, name: str, service_account: str) -> dict[str, Any]:
    body = {
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "serviceAccountName": service_account,
                    "containers": [{"name": "web", "image": "registry.invalid/web:1"}],
                },
            },
        },
    }
    return kube.create(DEPLOYMENTS, body)


def _settled(kube: Kube, path: str) -> str:
    """The object's resourceVersion once its controller stopped writing its status."""
    previous = ""
    for _ in range(60):
        current = kube.get(path)["metadata"]["resourceVersion"]
        if current == previous:
            return current
        previous = current
        time.sleep(1.5)
    pytest.fail(f"{path} never settled")


def _dry_run(lab: Lab, config: Path, book: str, *sets: str) -> subprocess.CompletedProcess[str]:
    argv = ["playbook", "run", book, "-c", str(config), "--dry-run", "--since", "1s"]
    for value in sets:
        argv += ["--set", value]
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "guardian"), *argv, "-o", "json"],
        env={**os.environ, "KUBECONFIG": str(lab.directory / "kubeconfig")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_quiet_cluster_reports_the_step_without_a_target_as_not_checked(
    lab: Lab, config: Path
) -> None:
    done = _dry_run(lab, config, "pause-suspect-rollout")
    assert done.returncode == 0, done.stderr
    [step] = json.loads(done.stdout)["steps"]
    assert step["plan"] is None and step["problems"] == []
    assert "suspects" in step["unchecked"] and "--set" in step["unchecked"]


def test_a_named_change_is_checked_and_its_service_account_is_the_offender(
    lab: Lab, kube: Kube, config: Path
) -> None:
    _deployment(kube, "staging-web", "web")
    version = _settled(kube, f"{DEPLOYMENTS}/staging-web")
    change = "change=Deployment/default/staging-web"
    pause = _dry_run(lab, config, "pause-suspect-rollout", change)
    assert pause.returncode == 0, pause.stderr
    [step] = json.loads(pause.stdout)["steps"]
    assert step["unchecked"] is None and step["problems"] == []
    assert step["plan"]["target"].endswith("default/staging-web")
    throttle = _dry_run(lab, config, "throttle-offender", change)
    assert throttle.returncode == 0, throttle.stderr
    doc = json.loads(throttle.stdout)
    assert doc["context"]["offender"] == {"namespace": "default", "name": "web"}
    [throttled] = doc["steps"]
    assert throttled["problems"] == [] and throttled["plan"] is not None
    assert "not among the top 3 talkers" in throttled["warning"], throttled
    named = _dry_run(lab, config, "throttle-offender", change, "offender=default/other")
    assert json.loads(named.stdout)["context"]["offender"] == {
        "namespace": "default",
        "name": "other",
    }
    after = kube.get(f"{DEPLOYMENTS}/staging-web")["metadata"]["resourceVersion"]
    assert after == version, "a dry run changed the Deployment"
    schemas = kube.list("/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas")
    assert not [s for s in schemas if "web" in s["metadata"]["name"]]


def test_a_malformed_change_is_one_line_and_exit_2(lab: Lab, config: Path) -> None:
    done = _dry_run(lab, config, "pause-suspect-rollout", "change=Deployment/staging-web")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "guardian: --set change=Deployment/staging-web: expected KIND/NAMESPACE/NAME with KIND "
        "one of DaemonSet, Deployment, StatefulSet, Rollout, "
        "e.g. change=DaemonSet/observability/telemetry-agent"
    ]
