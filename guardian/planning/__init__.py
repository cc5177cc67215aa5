"""The planning stage: a playbook, its params, the API server and Prometheus → concrete steps.

``trigger`` (what playbook templates see: suspects, offender, the SLO's burn rates; the
target of a run), ``suspects`` (recent rollouts, ranked), ``plans`` (a step's ``Plan`` and the
blast radius) and ``dry_run`` (every step sent with ``dryRun=All``). No module reads a
``Decision``: the suspects also run before the policy, whose guards get from the pipeline
whether one exists and the target a run would touch. Called by ``guardian.pipeline``
(suspects, trigger), ``guardian.executor`` (plans, dry run) and ``guardian.app`` (trigger and
suspects: ``wiring``, ``commands.playbooks``, ``commands.cluster``).
"""
