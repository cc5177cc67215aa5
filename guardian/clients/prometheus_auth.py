"""What every request to Prometheus carries: ``PrometheusSettings`` in, credentials out.

Input: ``PrometheusSettings``. Output: the request headers (``prometheus.headers`` and a
bearer token from ``bearer_token_env`` or ``bearer_token_file``), the basic-auth pair (the
password from ``basic_auth: password_file``) and the TLS verification (a checked
``tls_ca_file``, or off). A variable that is not set or a file that cannot be read is a
``ConfigError`` naming the field; a secret's value never enters one. Called once per client
by ``guardian.clients.prometheus.PrometheusClient``.
"""

from __future__ import annotations

import os

from guardian.config.files import check_ca_file, read_secret
from guardian.config.model import PrometheusSettings
from guardian.errors import ConfigError


def request_headers(settings: PrometheusSettings) -> dict[str, str]:
    """``prometheus.headers``, with ``Authorization: Bearer`` when a token is configured."""
    headers = dict(settings.headers)
    token = _bearer_token(settings)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _bearer_token(settings: PrometheusSettings) -> str | None:
    if settings.bearer_token_env:
        value = os.environ.get(settings.bearer_token_env)
        if not value:
            raise ConfigError(
                f"prometheus: bearer_token_env: variable {settings.bearer_token_env} is not set"
            )
        return value.strip()
    if settings.bearer_token_file:
        return _read_secret(settings.bearer_token_file, "bearer_token_file")
    return None


def basic_auth(settings: PrometheusSettings) -> tuple[str, str] | None:
    """``(username, password)`` when basic auth is configured, else None."""
    if settings.basic_auth_username is None or settings.basic_auth_password_file is None:
        return None
    password = _read_secret(settings.basic_auth_password_file, "basic_auth: password_file")
    return settings.basic_auth_username, password


def _read_secret(path: str, field: str) -> str:
    return read_secret(path, f"prometheus: {field}")


def tls_verify(settings: PrometheusSettings) -> bool | str:
    """What requests' ``verify`` gets: False, the CA bundle's path (checked), or True."""
    if settings.tls_insecure_skip_verify:
        return False
    if settings.tls_ca_file:
        check_ca_file(settings.tls_ca_file, "prometheus: tls_ca_file")
    return settings.tls_ca_file or True
