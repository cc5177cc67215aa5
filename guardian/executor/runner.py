"""The executor's public names, where ``guardian.pipeline``, ``guardian.app`` and the tests
import them: ``Runner`` (``guardian.executor.shell``), ``Decision``
(``guardian.executor.decisions``), ``Signals`` (``guardian.executor.verify``), ``Notifier`` and
``Silent`` (``guardian.approval.notify``), ``StepCheck`` (``guardian.planning.dry_run``) and
``KubeFor`` (``guardian.planning.plans``). Input, output: none (re-exports).
"""

from guardian.approval.notify import Notifier, Silent
from guardian.executor.decisions import Decision
from guardian.executor.shell import Runner
from guardian.executor.verify import Signals
from guardian.planning.dry_run import StepCheck
from guardian.planning.plans import KubeFor

__all__ = ["Decision", "KubeFor", "Notifier", "Runner", "Signals", "Silent", "StepCheck"]
