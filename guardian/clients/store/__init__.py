"""The SQL store: a store URL → ``Store`` (``guardian.clients.store.store``), which keeps the
executions, their steps and approvals, the audit log, the chat messages, the settings and the
pipeline's memory, and implements the storage ports. Imported from here by ``guardian.app``
(``wiring``, ``chatops``, ``commands.playbooks``, ``daemon.run``, ``daemon.metrics``), the
examples and the tests.
"""

from guardian.clients.store.store import Store

__all__ = ["Store"]
