"""The console commands, one module per group: ``evaluate`` (check, eval, rules, backtest),
``cluster`` (suspects, act), ``playbooks``, ``approvals`` (and history) and ``switch`` (pause,
resume). Each registers its parsers when ``guardian.app.cli`` asks, with the shared flags of
``guardian.app.args``. The store, playbooks, Kubernetes clients and executor come from
``guardian.app.wiring``; ``eval``, ``backtest`` and ``playbook run`` open their own Prometheus
client, and ``check`` and ``rules`` need none.
"""
