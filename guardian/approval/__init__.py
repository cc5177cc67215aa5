"""The approval stage: who may decide, how people hear of executions, and the Slack message.

``rules`` (an execution, who asks and what they were shown → the refusal, or none; called by
``guardian.executor.decisions``), ``notify`` (executor events and announcements → the log or
Slack; ``Notifier``, ``Silent``, ``SlackNotifier``, built by ``guardian.app.wiring``) and
``blocks`` (an execution → Block Kit text and buttons, and a button's value read back; used by
``notify``, ``guardian.app.chatops`` and ``guardian.clients.slack``). No SDK: Slack and the
store are reached through the ports they declare.
"""
