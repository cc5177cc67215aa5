"""The console commands, one module per group: ``evaluate`` (check, eval, rules, backtest),
``cluster`` (suspects, act), ``playbooks``, ``approvals`` (and history) and ``switch`` (pause,
resume). Each registers its parsers when ``guardian.app.cli`` asks, with the shared flags of
``guardian.app.args``, and builds what it needs through ``guardian.app.wiring``.
"""
