"""How ``make test`` hands tests to its pytest-xdist workers: whole modules, in collection
order (``tests/conftest.py`` puts the slowest first), except the modules that start labs of
their own and storms (``OWN_LABS``), which run one after another on one worker so that no
two of them compete for the 2 cores at once."""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling

OWN_LABS = frozenset(
    {"test_lab_scale.py", "test_demo.py", "test_dns_cascade.py", "test_lab_fleet.py"}
)


class ModulesOwnLabsTogether(LoadScopeScheduling):  # type: ignore[misc]
    """Load scheduling by module, with the ``OWN_LABS`` modules as one unit of work."""

    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        return "own-labs" if module.rsplit("/", 1)[-1] in OWN_LABS else module
