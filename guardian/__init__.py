"""guardian keeps Kubernetes control planes alive.

It evaluates the configured SLOs from Prometheus (multi-window multi-burn-rate), lets a policy
decide, and proposes codified playbooks; a run goes against the API server step by step once
approved (on Slack, at the console, or ``auto`` where a step says so), each step verified,
undone on failure where the playbook asks, everything audited. The public entry
point is the ``guardian`` CLI (``guardian.app.cli``): console commands and the daemon
(``guardian run``, ``guardian slack``). ``__version__`` is read by the CLI and the rules export.
"""

__version__ = "0.1.0"
