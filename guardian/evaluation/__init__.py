"""The evaluation stage: Prometheus → ``Evaluation`` (burn rates per window pair, status per SLO).

Entry points in ``guardian.evaluation.run`` (``evaluate`` for one instant, ``replay`` for a
range, ``evaluation_budget``, ``PrometheusSignals``), called by ``guardian.pipeline`` and
``guardian.app`` (``commands.evaluate``, ``charts``, ``wiring``); ``guardian.planning.trigger``
imports ``budget``, ``instant``, ``signals`` and ``source`` directly. Parts: ``source`` (the
ports it needs from Prometheus), ``queries`` and ``sli`` (PromQL), ``budget`` (queries on
threads, within a deadline), ``instant`` and ``replay``, ``answers`` and ``results`` (answers
→ ``SLOResult``), ``signals`` (verification), ``backtest`` (alert episodes), ``rules`` (the
recording and alerting rules), and the change guard's parts: ``changes`` (the change log's
model and ranking), ``change_log`` (the change log from kube-state-metrics),
``change_guard`` and ``change_replay`` (change-aware detection, now and over a replay) and
``burn_began`` (when a workbook page's burn began).
Never imports ``guardian.clients``: ``guardian.clients.prometheus`` implements the port.
"""
