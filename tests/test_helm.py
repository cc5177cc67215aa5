"""deploy/helm/guardian: lint, a server-side dry run of what it renders, and a real install
into the lab with guardian run from the repository as the chart's service account."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from guardian.clients.kube import Kube
from guardian.config import load_config
from guardian.testing.postgres import PostgresServer
from tests.lab_fixture import ROOT, Lab, eventually
from tests.store_fixture import fresh_url
from tests.test_daemon import Daemon

pytestmark = pytest.mark.lab

CHART = ROOT / "deploy" / "helm" / "guardian"


def _tool(
    lab: Lab, name: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(lab.state["bin"]) / name), *args],
        env={**os.environ, "KUBECONFIG": str(lab.directory / "kubeconfig")},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_chart_lints_and_refuses_two_replicas_without_a_shared_store(lab: Lab) -> None:
    lint = _tool(lab, "helm", "lint", str(CHART), "--set", "store.urlSecret.name=db")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in lint.stdout
    bare = _tool(lab, "helm", "template", "g", str(CHART))
    assert bare.returncode == 1
    assert "replicas > 1 share one store: set store.urlSecret.name" in bare.stderr
    single = _tool(lab, "helm", "template", "g", str(CHART), "--set", "replicas=1")
    assert single.returncode == 0, single.stderr


def test_what_the_chart_renders_passes_a_server_side_dry_run(lab: Lab) -> None:
    rendered = _tool(
        lab,
        "helm",
        "template",
        "g",
        str(CHART),
        "--namespace",
        "default",
        "--set",
        "store.urlSecret.name=db",
        "--set",
        "slack.enabled=true",
        "--set",
        "slack.channel=C0123",
        "--set",
        "helmSuspects=true",
    )
    assert rendered.returncode == 0, rendered.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(rendered.stdout) if d)
    assert kinds == sorted(
        ["ServiceAccount", "ClusterRole", "ClusterRole", "ClusterRoleBinding",
         "ClusterRoleBinding", "Role", "RoleBinding", "PriorityLevelConfiguration", "FlowSchema",
         "ConfigMap", "ConfigMap", "Deployment", "PodDisruptionBudget", "Service"]
    )  # fmt: skip
    applied = _tool(lab, "kubectl", "apply", "--dry-run=server", "-f", "-", stdin=rendered.stdout)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.count("(server dry run)") == len(kinds)
    assert _tool(lab, "kubectl", "get", "deployment", "g-guardian").returncode == 1, "not created"


def test_the_chart_s_rules_file_is_what_guardian_rules_writes(tmp_path: Path) -> None:
    out = tmp_path / "rules.yaml"
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "guardian"), "rules", "-c", "config", "-o", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_text() == (CHART / "files" / "rules.yaml").read_text()


def test_an_install_into_the_lab_runs_as_the_chart_s_service_account(
    lab: Lab, tmp_path: Path, postgres: PostgresServer
) -> None:
    admin = Kube.from_kubeconfig(str(lab.directory / "kubeconfig"), qps=50, burst=100)
    namespace = "guardian-helm"
    url = fresh_url("postgresql", postgres, tmp_path)
    prometheus = f"http://127.0.0.1:{lab.ports['prometheus']}"
    admin.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
    admin.create(
        f"/api/v1/namespaces/{namespace}/secrets",
        {"metadata": {"name": "guardian-store"}, "stringData": {"url": url}},
    )
    installed = _tool(
        lab, "helm", "install", "g", str(CHART), "--namespace", namespace,
        "--set", "store.urlSecret.name=guardian-store", "--set", f"prometheus.url={prometheus}",
        "--set", "daemon.interval=2s", "--set", "daemon.lease.duration=6s",
        "--set", "daemon.lease.renewDeadline=4s", "--set", "daemon.lease.retryPeriod=1s",
        "--wait", "--timeout", "120s",
    )  # fmt: skip
    try:
        assert installed.returncode == 0, installed.stderr
        deployment = admin.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/g-guardian")
        assert deployment["status"].get("readyReplicas") == 2, deployment["status"]
        config = _unpack(admin, namespace, tmp_path)
        guard = load_config(config).change_guard
        assert guard is not None and guard.labels == (("tier", "control-plane"),)
        token = admin.create(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/g-guardian/token",
            {"spec": {"expirationSeconds": 3600}},
        )["status"]["token"]
        kubeconfig = tmp_path / "sa.kubeconfig"
        kubeconfig.write_text(_kubeconfig(lab, token))
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "POD_NAMESPACE": namespace,
            "GUARDIAN_STORE_URL": url,
        }
        daemon = Daemon(config, "from-the-repository", env, tmp_path / "daemon.log")
        try:
            eventually(daemon.leading, 30, "leader through the chart's Role on leases")
            ready = daemon.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert "apiserver: ok" in ready.text
            eventually(lambda: daemon.metric("guardian_evaluations_total") >= 1, 30, "evaluated")
            lease = admin.get(
                f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/g-guardian"
            )
            assert lease["spec"]["holderIdentity"] == "from-the-repository"
        finally:
            assert daemon.stop(signal.SIGTERM) == 0, daemon.text()[-2000:]
        assert "lease released" in daemon.text(), "the Role allows deleting its own Lease"
    finally:
        _tool(lab, "helm", "uninstall", "g", "--namespace", namespace, "--wait")
        admin.delete(f"/api/v1/namespaces/{namespace}")


def _unpack(admin: Kube, namespace: str, tmp_path: Path) -> Path:
    """The config and playbooks the chart mounts, as files (the pod's /etc/guardian)."""
    root = tmp_path / "etc-guardian"
    for name, directory in (("g-guardian-config", "config"), ("g-guardian-playbooks", "playbooks")):
        target = root / directory
        target.mkdir(parents=True)
        data: dict[str, Any] = admin.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")[
            "data"
        ]
        for key, text in data.items():
            (target / key).write_text(text)
    assert sorted(p.name for p in (root / "playbooks").iterdir()) == sorted(
        p.name for p in (ROOT / "playbooks").glob("*.yaml")
    )
    return root / "config"


def _kubeconfig(lab: Lab, token: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "lab",
                    "cluster": {
                        "server": f"https://127.0.0.1:{lab.ports['kube-apiserver']}",
                        "certificate-authority": str(lab.directory / "pki" / "ca.crt"),
                    },
                }
            ],
            "users": [{"name": "sa", "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": "lab", "user": "sa"}}],
            "current-context": "sa",
        }
    )
