"""The planning stage: ``Decision`` → concrete steps.

``trigger`` (what playbook templates see: suspects, offender, the SLO's burn rates; the
target of a run), ``suspects`` (recent rollouts, ranked), ``plans`` (a step's ``Plan`` and the
blast radius) and ``dry_run`` (every step sent with ``dryRun=All``). Called by
``guardian.pipeline``, ``guardian.executor`` and ``guardian.app``.
"""
