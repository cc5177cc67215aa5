"""Configuration: the ``guardian/v1`` spec, the frozen model, and the loader."""

from guardian.config.load import load_config
from guardian.config.model import (
    SLI,
    SLO,
    ApiserverLatencySLI,
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
    "Config",
    "CorednsErrorsSLI",
    "LatencySLI",
    "PolicySettings",
    "PrometheusSettings",
    "RatioSLI",
    "WindowPair",
    "load_config",
]
