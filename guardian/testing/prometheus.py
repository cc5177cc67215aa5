"""A real Prometheus server on loopback, with backfilled data, for tests, demo and bench.

Input: a TSDB directory (filled by ``backfill`` from OpenMetrics text), optional rule files
and scrape targets. Output: a running ``prometheus`` on a free 127.0.0.1 port. Used by the
test fixtures, ``make demo`` and ``make bench``; guardian itself never starts Prometheus.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import yaml


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def binary(name: str) -> str:
    """Path of ``prometheus`` or ``promtool``; a clear error when they are not installed."""
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: run scripts/install-prometheus.sh (make setup)")
    return found


def backfill(openmetrics: Path, tsdb: Path, max_block_duration: str = "24h") -> None:
    """Turn an OpenMetrics file into TSDB blocks under ``tsdb`` with promtool."""
    tsdb.mkdir(parents=True, exist_ok=True)
    cmd = [
        binary("promtool"),
        "tsdb",
        "create-blocks-from",
        "openmetrics",
        "--quiet",
        f"--max-block-duration={max_block_duration}",
        str(openmetrics),
        str(tsdb),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"promtool backfill failed: {done.stderr.strip()[-2000:]}")


class PrometheusServer:
    """``prometheus`` as a child process; use as a context manager."""

    def __init__(
        self,
        tsdb: Path,
        rule_files: Sequence[Path] = (),
        scrape_configs: Sequence[dict[str, object]] = (),
        evaluation_interval: str = "1s",
        port: int | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.tsdb = tsdb
        self.rule_files = list(rule_files)
        self.scrape_configs = list(scrape_configs)
        self.evaluation_interval = evaluation_interval
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self._workdir = Path(tempfile.mkdtemp(prefix="guardian-prom-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> PrometheusServer:
        """Start the server and wait until it answers ``/-/ready``."""
        config = {
            "global": {
                "scrape_interval": "1s",
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": self.scrape_configs,
        }
        config_file = self._workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
        log = (self._workdir / "prometheus.log").open("wb")
        self._proc = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={self.tsdb}",
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--query.max-samples=500000000",
                "--log.level=warn",
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"prometheus exited early: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"prometheus not ready after {timeout:.0f}s: {self.log_tail()}")

    def log_tail(self) -> str:
        """The last lines Prometheus logged."""
        path = self._workdir / "prometheus.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self.start() if self._proc is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
