"""docker-compose.yml and the Dockerfile, checked statically (no Docker engine runs here):
the Compose Specification's own schema, referenced files, pinned images, loopback ports,
and the config guardian gets inside compose."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from guardian.app.cli import main
from tests.lab_fixture import ROOT

COMPOSE_GO = "github.com/compose-spec/compose-go/v2@v2.9.1"
"""The module Docker Compose validates with; its schema/compose-spec.json is the spec."""


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def _compose_schema() -> dict[str, Any]:
    done = subprocess.run(
        ["go", "mod", "download", "-json", COMPOSE_GO],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT / "lab",
        env={**os.environ, "GOFLAGS": "-mod=mod", "GO111MODULE": "on"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    directory = Path(json.loads(done.stdout)["Dir"])
    schema: dict[str, Any] = json.loads((directory / "schema" / "compose-spec.json").read_text())
    return schema


def test_the_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(_compose_schema())
    validator.validate(compose)
    broken = json.loads(json.dumps(compose))
    broken["services"]["guardian"]["ports"] = [{"published": "x", "bogus": 1}]
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


def test_every_file_compose_mounts_or_builds_exists(compose: dict[str, Any]) -> None:
    sources = []
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                sources.append((name, source))
        build = service.get("build")
        if build:
            sources.append((name, build["context"]))
            sources.append((name, str(Path(build["context"]) / build["dockerfile"])))
    assert len(sources) >= 9
    missing = [(n, s) for n, s in sources if not (ROOT / s).exists()]
    assert missing == []


def test_images_are_pinned_and_ports_stay_on_loopback(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: {image} is not pinned"
        assert re.search(r"\d+\.\d+", tag), f"{name}: {image} has no version in its tag"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port} binds beyond loopback"
    dockerfile = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert len(bases) == 2, "multi-stage: build, then a slim runtime"
    assert all(re.search(r":\d+\.\d+\.\d+", b) for b in bases), bases


def test_the_image_runs_as_a_non_root_user_and_copies_only_what_exists() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    for line in lines:
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), line
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def test_guardian_s_config_inside_compose_is_valid(
    compose: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Assemble /etc/guardian as compose mounts it, then `guardian check` it."""
    service = compose["services"]["guardian"]
    for volume in service["volumes"]:
        source, _, rest = volume.partition(":")
        if not source.startswith("."):
            continue
        target = tmp_path / rest.split(":")[0].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target)
        else:
            shutil.copy(ROOT / source, target)
    config = tmp_path / "etc" / "guardian" / "config"
    assert service["command"][:3] == ["run", "-c", "/etc/guardian/config"]
    assert main(["check", "-c", str(config)]) == 0, capsys.readouterr().err
    kubeconfig = yaml.safe_load((tmp_path / "etc/guardian/kubeconfig.yaml").read_text())
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "http://kwok:8080"
    prometheus = yaml.safe_load((ROOT / "deploy/compose/prometheus.yml").read_text())
    targets = [c["static_configs"][0]["targets"][0] for c in prometheus["scrape_configs"]]
    assert targets == ["kwok:8080", "guardian:8080"]
