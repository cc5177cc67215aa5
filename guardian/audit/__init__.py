"""The audit stage: the records guardian keeps, the kinds of audit row, the storage ports and
the kill switch.

``records`` (executions, steps, approval requests, audit rows: plain frozen values),
``kinds`` (``AuditKind``: the closed set of audit kinds), ``ports`` (the Protocols through
which the stages and the pipeline reach the store) and ``switch`` (``KillSwitch``). No I/O:
``guardian.clients.store`` implements the ports; the executor, the approval stage, the
pipeline and the front ends (``guardian.app``) use them.
"""
