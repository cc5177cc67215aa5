"""The executor: a proposed playbook run → its steps applied, verified or undone, persisted.

``machine`` (pure: execution and facts → the next move, words in ``moves``), ``shell``
(``Runner``: reads the facts, does the I/O, writes each move once through the ``ports``),
``decisions`` (approve, deny, refuse, expire), ``undoing`` (a person's undo), ``verify`` and
``undo``; ``runner`` re-exports the public names. Built by ``guardian.app.wiring``; called
by ``guardian.pipeline``, ``guardian.app.chatops``, ``guardian.app.commands`` and
``guardian.app.daemon``.
"""
