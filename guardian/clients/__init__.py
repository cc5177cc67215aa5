"""The edges: guardian's side of Prometheus, Kubernetes, the Lease, Slack and the SQL store.

Each module turns an SDK (requests, kubernetes, slack_sdk, slack_bolt, sqlalchemy) into what
the stages' ports ask for: ``prometheus`` (PromQL → checked samples, ``QuerySource``),
``kube`` (paths and JSON, rate-limited, ``KubeAPI``), ``lease`` (leader election), ``slack``
and ``slack_http`` (messages out, clicks and commands in), ``store`` (the SQL store, every
storage port) and ``database`` (opening it). Built and used by ``guardian.app`` (mostly
``guardian.app.wiring`` and ``guardian.app.daemon.run``). The stages never import an SDK;
``guardian.app`` does too (rich, matplotlib, apscheduler, prometheus_client), and
``guardian.config.checks`` parses store URLs with sqlalchemy's ``make_url``.
"""
