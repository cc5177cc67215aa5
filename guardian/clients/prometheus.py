"""Prometheus client: PromQL in, samples out, through prometheus-api-client.

Input: ``PrometheusSettings`` and PromQL strings. Output: ``InstantSample`` / ``RangeSeries``
lists. Called by ``guardian.pipeline`` (evaluation, backtest) and by the CLI. The SDK's own
urllib3 retries are switched off; transient failures (connection errors, timeouts, 429, 5xx)
are retried once here with tenacity, then raised as ``PrometheusUnavailable``. A query
Prometheus rejects as invalid (400) is a ``ConfigError``: the PromQL came from the user.
"""

from __future__ import annotations

import ast
import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

import requests
import tenacity
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from guardian.config.model import PrometheusSettings
from guardian.errors import ConfigError, PrometheusUnavailable

# Queries longer than this go in a form body: a URL of a thousand SLOs would be too long.
_MAX_URL_QUERY = 6000


@dataclass(frozen=True)
class InstantSample:
    """One series of an instant query."""

    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class RangeSeries:
    """One series of a range query: ``(unix_seconds, value)`` points."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


class _Transient(Exception):
    """Worth one more try."""


class PrometheusClient:
    """A small, synchronous PromQL client with one retry for transient failures.

    Safe to share between threads (the pipeline runs window queries in parallel).
    """

    def __init__(
        self,
        settings: PrometheusSettings,
        sleep: Callable[[float], None] = tenacity.nap.sleep,
        retry_wait: float = 0.5,
    ) -> None:
        self.settings = settings
        self.queries = 0
        self._count_lock = threading.Lock()
        self._headers = _headers(settings)
        self._auth = _basic_auth(settings)
        session = requests.Session()
        session.verify = _verify(settings)
        self._session = session
        self._api = PrometheusConnect(
            url=settings.url,
            headers=self._headers,
            retry=Retry(total=0, raise_on_status=False),
            auth=self._auth,
            session=session,
            timeout=settings.timeout,
            method="POST",
        )
        self._retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(2),
            wait=tenacity.wait_fixed(retry_wait),
            retry=tenacity.retry_if_exception_type(_Transient),
            sleep=sleep,
            reraise=True,
        )

    def instant(self, promql: str, at: datetime | None = None) -> list[InstantSample]:
        """Evaluate ``promql`` at ``at`` (now when ``None``)."""
        params = {} if at is None else {"time": f"{at.timestamp():.3f}"}
        result = self._call("query", promql, params)
        return [InstantSample(dict(item["metric"]), float(item["value"][1])) for item in result]

    def range(self, promql: str, start: datetime, end: datetime, step: int) -> list[RangeSeries]:
        """Evaluate ``promql`` at every ``step`` seconds from ``start`` to ``end``."""
        params = {
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": str(step),
        }
        result = self._call("query_range", promql, params)
        return [
            RangeSeries(dict(item["metric"]), [(float(t), float(v)) for t, v in item["values"]])
            for item in result
        ]

    def ping(self) -> None:
        """Raise ``PrometheusUnavailable`` unless Prometheus answers a trivial query."""
        self.instant("vector(1)")

    def close(self) -> None:
        """Release the HTTP connections."""
        self._session.close()

    def _call(self, endpoint: str, promql: str, params: dict[str, str]) -> list[Any]:
        try:
            result: list[Any] = self._retrying.copy()(self._once, endpoint, promql, params)
        except _Transient as exc:
            raise PrometheusUnavailable(
                f"cannot query Prometheus at {self.settings.url}: {exc}"
            ) from None
        return result

    def _once(self, endpoint: str, promql: str, params: dict[str, str]) -> list[Any]:
        with self._count_lock:
            self.queries += 1
        try:
            if len(promql) <= _MAX_URL_QUERY:
                return self._via_sdk(endpoint, promql, params)
            response = self._session.post(
                f"{self.settings.url}/api/v1/{endpoint}",
                data={"query": promql, **params},
                headers=self._headers,
                auth=self._auth,
                timeout=self.settings.timeout,
                # explicit: requests prefers $REQUESTS_CA_BUNDLE over session.verify
                verify=self._session.verify,
            )
        except requests.Timeout:
            raise _Transient(f"no answer within {self.settings.timeout}s") from None
        except requests.ConnectionError as exc:
            raise _Transient(_connection_reason(exc)) from None
        except ValueError:  # includes requests' JSONDecodeError
            raise _Transient("the answer is not Prometheus JSON") from None
        except requests.RequestException as exc:
            raise _Transient(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        return _result(response)

    def _via_sdk(self, endpoint: str, promql: str, params: dict[str, str]) -> list[Any]:
        try:
            if endpoint == "query":
                data: list[Any] = self._api.custom_query(promql, params=params)
            else:
                data = self._api.custom_query_range(
                    promql,
                    start_time=datetime.fromtimestamp(float(params["start"])),
                    end_time=datetime.fromtimestamp(float(params["end"])),
                    step=params["step"],
                )
        except PrometheusApiClientException as exc:
            _raise_for(str(exc))
        if data and isinstance(data[0], int | float):
            return [{"metric": {}, "value": data}]
        return data


def _result(response: requests.Response) -> list[Any]:
    if response.status_code == 200:
        try:
            body = response.json()
        except ValueError:
            raise _Transient("the answer is not Prometheus JSON") from None
        data: list[Any] = body["data"]["result"]
        if body["data"].get("resultType") == "scalar":
            return [{"metric": {}, "value": data}]
        return data
    _raise_status(response.status_code, _error_text(response.text))


def _raise_for(message: str) -> NoReturn:
    """Classify the SDK's ``HTTP Status Code 503 (b'...')`` message."""
    match = re.match(r"HTTP Status Code (\d+) \((.*)\)$", message, re.DOTALL)
    if match is None:
        raise _Transient(message[:200])
    body = match.group(2)
    try:
        text = ast.literal_eval(body)
        body = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    except (ValueError, SyntaxError):
        pass
    _raise_status(int(match.group(1)), _error_text(body))


def _raise_status(status: int, detail: str) -> NoReturn:
    if status == 400:
        raise ConfigError(f"Prometheus rejected a query: {detail}")
    if status == 429 or status >= 500:
        raise _Transient(f"HTTP {status}: {detail}")
    raise PrometheusUnavailable(f"Prometheus answered HTTP {status}: {detail}")


def _error_text(body: str) -> str:
    try:
        parsed = json.loads(body)
        text = str(parsed.get("error", "")) if isinstance(parsed, dict) else body
    except ValueError:
        text = body
    lines = text.strip().splitlines()
    return lines[0][:300] if lines else ""


def _connection_reason(exc: requests.ConnectionError) -> str:
    text = str(exc)
    for known in ("Connection refused", "Name or service not known", "No route to host"):
        if known in text:
            return known.lower()
    return "connection failed"


def _headers(settings: PrometheusSettings) -> dict[str, str]:
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


def _basic_auth(settings: PrometheusSettings) -> tuple[str, str] | None:
    if settings.basic_auth_username is None or settings.basic_auth_password_file is None:
        return None
    password = _read_secret(settings.basic_auth_password_file, "basic_auth: password_file")
    return settings.basic_auth_username, password


def _read_secret(path: str, field: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as exc:
        raise ConfigError(f"prometheus: {field}: cannot read {path}: {exc.strerror}") from None


def _verify(settings: PrometheusSettings) -> bool | str:
    if settings.tls_insecure_skip_verify:
        return False
    return settings.tls_ca_file or True
