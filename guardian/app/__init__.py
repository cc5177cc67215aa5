"""The composition root and the front ends: ``wiring`` builds the store, the Kubernetes
client pool, the executor, the notifier, ``ChatOps`` and the cycle, which ``commands`` (the
console) and ``daemon`` (``guardian run``, ``guardian slack``) get from it; ``eval``,
``backtest``, ``playbook run`` and the burn chart (``charts``) open their own Prometheus
client, and the daemon builds its Lease, Slack app, scheduler and HTTP port itself. ``cli``
parses the command line for ``commands`` and ``daemon``; ``chatops`` answers Slack. Nothing
below ``guardian.app`` imports it.
"""
