"""Playbooks: codified responses, ``guardian/v1`` YAML files → frozen ``Playbook`` values.

``load_playbooks`` (``load``: paths, the actions' parameter models, the SLO names → playbooks
by name, checked against ``spec``, ``{{ }}`` values checked by ``template``) is called by
``guardian.app.wiring.playbooks_of`` and the example in ``examples/``; ``Playbook`` and
``Step`` (``model``) are read by the pipeline, the policy, planning, the executor, the approval
stage and ``guardian.app``.
"""

from guardian.playbooks.load import load_playbooks
from guardian.playbooks.model import Playbook, Step

__all__ = ["Playbook", "Step", "load_playbooks"]
