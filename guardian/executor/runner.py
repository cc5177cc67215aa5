"""The executor's public names, re-exported: ``Runner`` (``guardian.executor.shell``),
``Decision`` (``guardian.executor.decisions``), ``Signals`` (``guardian.executor.verify``),
``Notifier`` and ``Silent`` (``guardian.approval.notify``), ``StepCheck``
(``guardian.planning.dry_run``) and ``KubeFor`` (``guardian.planning.plans``). Input, output:
none. Imported for ``Runner`` by ``guardian.pipeline``, ``guardian.app.wiring`` (with
``Notifier`` and ``Silent``) and ``guardian.app.chatops``; for ``StepCheck`` by
``guardian.app.chat_text`` and ``guardian.app.commands.playbooks``; and by the tests
(``Runner``, ``Silent``, ``Decision``). Nobody imports ``Signals`` or ``KubeFor`` from here.
"""

from guardian.approval.notify import Notifier, Silent
from guardian.executor.decisions import Decision
from guardian.executor.shell import Runner
from guardian.executor.verify import Signals
from guardian.planning.dry_run import StepCheck
from guardian.planning.plans import KubeFor

__all__ = ["Decision", "KubeFor", "Notifier", "Runner", "Signals", "Silent", "StepCheck"]
