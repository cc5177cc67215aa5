"""Configuration: a config file or directory → the frozen ``Config``.

``load`` (``load_config``: finds and merges the files) reads each with ``read`` and ``files``,
validates it against the ``guardian/v1`` spec (``spec``, ``slo_spec``, ``guard_spec``,
``checks``) and builds the model (``build``, ``guard_build``, ``windows``, ``model``); each
problem is one line (``messages``).
Re-exported here: ``load_config`` and the model's types, imported by ``guardian.app``
(``wiring``, ``charts``, the commands and the daemon), ``guardian.pipeline``,
``guardian.planning.trigger``, ``bench/evaluate.py`` and the tests.
"""

from guardian.config.load import load_config
from guardian.config.model import (
    SLI,
    SLO,
    ApiserverLatencySLI,
    ChangeGuardSettings,
    Config,
    CorednsErrorsSLI,
    LatencySLI,
    PolicySettings,
    PrometheusSettings,
    RatioSLI,
    WindowPair,
)

__all__ = [
    "SLI",
    "SLO",
    "ApiserverLatencySLI",
    "ChangeGuardSettings",
    "Config",
    "CorednsErrorsSLI",
    "LatencySLI",
    "PolicySettings",
    "PrometheusSettings",
    "RatioSLI",
    "WindowPair",
    "load_config",
]
