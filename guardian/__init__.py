"""guardian keeps Kubernetes control planes alive.

It reads SLOs from Prometheus, evaluates multi-window multi-burn-rate alerts and (in later
stages) runs codified playbooks. The public entry point is the ``guardian`` CLI.
"""

__version__ = "0.1.0"
