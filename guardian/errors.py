"""The error tree of guardian; every error a user can cause or meet is one of these.

::

    GuardianError                  base; carries a one-line message and a CLI exit code
    ├── ConfigError                bad input: config or playbook files (exit 2)
    │   └── ConfigErrors           several ConfigErrors found in one pass
    ├── UsageError                 bad command-line arguments (exit 2)
    │   └── Refused                an action would touch a protected target (actions.base)
    ├── DataUnavailable            a dependency cannot answer (exit 3)
    │   ├── PrometheusUnavailable  Prometheus unreachable, timing out, answering 5xx or badly
    │   │   │                      (not the answer asked for, a redirect, over 50 MB)
    │   │   └── QueryRefused       a query refused (400; clients.prometheus): its SLO no_data
    │   └── StoreUnavailable       the store cannot be opened, is not guardian's, or fails
    └── KubernetesError            (used by the actions stage)
        ├── TransientKubernetesError  409, 429, 5xx, timeouts: retried
        └── PermanentKubernetesError  403, 404, 422: reported, never retried

Imported across guardian (it imports nothing of guardian): raised by the stages, the clients
and the front ends. The CLI (``guardian.app.cli``) turns any ``GuardianError`` into its message
on one line and its exit code; it never prints a traceback for one. The daemon's jobs
(``guardian.app.daemon.run``), ChatOps and the Slack notifier report one and go on.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BURNING = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3


class GuardianError(Exception):
    """Base of every error guardian raises on purpose."""

    exit_code = EXIT_BURNING

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(GuardianError):
    """A configuration file is wrong; the message names the file, the path and the fix."""

    exit_code = EXIT_BAD_INPUT


class ConfigErrors(ConfigError):
    """All the problems found in one configuration, one line each."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("\n".join(e.message for e in errors))
        self.errors = errors


class UsageError(GuardianError):
    """The command line is wrong."""

    exit_code = EXIT_BAD_INPUT


class DataUnavailable(GuardianError):
    """A data source cannot answer; guardian reports ``no_data`` and never acts on it."""

    exit_code = EXIT_UNAVAILABLE


class PrometheusUnavailable(DataUnavailable):
    """Prometheus is unreachable, too slow, or answers with an error."""


class StoreUnavailable(DataUnavailable):
    """The store's URL is unusable, its database is not guardian's, or it does not answer;
    the message names the store with its password masked, and the fix."""


class KubernetesError(GuardianError):
    """An API-server call failed."""


class TransientKubernetesError(KubernetesError):
    """Worth retrying: 409 conflicts, 429, 5xx and timeouts."""


class PermanentKubernetesError(KubernetesError):
    """Not worth retrying: 403, 404, 422."""
