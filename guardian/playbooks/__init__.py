"""Playbooks: codified responses, loaded from ``guardian/v1`` YAML files."""

from guardian.playbooks.load import load_playbooks
from guardian.playbooks.model import Playbook, Step

__all__ = ["Playbook", "Step", "load_playbooks"]
