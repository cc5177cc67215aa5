"""Advance every open execution, killing this process with SIGKILL at one named boundary.

Usage: crash_runner.py STORE_URL PLAYBOOKS KUBECONFIG GUARDIAN_CONFIG [BOUNDARY]
The runner's ``on_boundary`` hook names each persisted boundary ("planned 0", "sent 0/0",
"applied 0/0", "done 0", ...); reaching BOUNDARY kills the process there, as kill -9 would.
"""

from __future__ import annotations

import os
import signal
import sys

from guardian.actions import CATALOGUE
from guardian.clients.kube import Kube
from guardian.clients.prometheus import PrometheusClient
from guardian.clients.store import Store
from guardian.config import load_config
from guardian.evaluation.run import PrometheusSignals
from guardian.executor.runner import Runner
from guardian.playbooks import load_playbooks


def main() -> int:
    url, books, kubeconfig, config_path, *rest = sys.argv[1:]
    boundary = rest[0] if rest else ""
    kube = Kube.from_kubeconfig(kubeconfig, qps=50, burst=100)
    config = load_config(config_path)
    actions = {name: action.params for name, action in CATALOGUE.items()}

    def hook(where: str) -> None:
        if where == boundary:
            os.kill(os.getpid(), signal.SIGKILL)

    runner = Runner(
        Store.open(url),
        load_playbooks([books], actions),
        lambda context: kube,
        PrometheusSignals(config.slos, PrometheusClient(config.prometheus)),
        owner="crash-runner",  # the same identity after a restart, as a daemon has
        on_boundary=hook,
    )
    runner.advance_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
