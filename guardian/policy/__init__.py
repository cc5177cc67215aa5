"""The policy stage: ``Evaluation`` → ``Decision`` (ignore, notify or propose a playbook), pure.

``guardian.policy.decide`` picks the playbook; ``guardian.policy.guards`` holds one small
function per guard (kill switch, maintenance window, one open run per target, cooldown, hourly
limit, suspect). Called by ``guardian.pipeline`` (``Cycle.act``).
"""
