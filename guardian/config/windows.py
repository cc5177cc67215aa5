"""Built-in multi-window multi-burn-rate sets, as data (Google SRE Workbook, ch. 5).

Read by ``guardian.config.build`` when an SLO names a window set. Factors are not stored:
``WindowPair.factor(period)`` derives them, so a 28-day period gets 13.44 where 30 days get
14.4, exactly as Sloth does.
"""

from __future__ import annotations

from guardian.config.model import WindowPair

_H = 3600
_M = 60
_D = 86400

GOOGLE = (
    WindowPair("page", 1 * _H, 5 * _M, budget_fraction=0.02),
    WindowPair("page", 6 * _H, 30 * _M, budget_fraction=0.05),
    WindowPair("ticket", 1 * _D, 2 * _H, budget_fraction=0.10),
    WindowPair("ticket", 3 * _D, 6 * _H, budget_fraction=0.10),
)

BUILTIN: dict[str, tuple[WindowPair, ...]] = {
    "google-30d": GOOGLE,
    "google-28d": GOOGLE,
}
