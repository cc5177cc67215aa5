"""A gentle Kubernetes client: every call through one token bucket, with bounded retries.

Input: API paths and JSON bodies (plain dicts). Output: decoded JSON. Built by
``guardian.app.wiring.KubePool``; called, through the ports they declare, by the actions
(``guardian.actions``), suspect ranking (``guardian.planning``) and the executor, and by the
change log's watches (``guardian.clients.watch_loop``, one WATCH per token). Wraps the
official ``kubernetes`` client (kubeconfig, TLS, auth) and adds, for every request: the
client-side ``TokenBucket`` (default 5 QPS, burst 10), a per-request timeout, and tenacity
retries of transient failures only — 409 conflicts (the caller re-reads), 429 honouring
``Retry-After``, 5xx and timeouts with backoff — within a bounded total time. 403, 404 and
422 are ``PermanentKubernetesError``, reported at once and never retried.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import tenacity
import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from guardian.clients.kube_watch import WatchStream, open_watch
from guardian.clients.ratelimit import TokenBucket
from guardian.errors import (
    ConfigError,
    KubernetesError,
    PermanentKubernetesError,
    TransientKubernetesError,
)

JSON = dict[str, Any]
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}


class Conflict(TransientKubernetesError):
    """409: somebody changed the object; re-read it and try again."""


class Throttled(TransientKubernetesError):
    """429: the API server asks to come back after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Kube:
    """JSON in, JSON out, gently."""

    def __init__(
        self,
        api_client: Any,
        bucket: TokenBucket | None = None,
        timeout: float = 10.0,
        total_timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_client = api_client
        self.bucket = bucket or TokenBucket()
        self.timeout = timeout
        self.total_timeout = total_timeout
        self.requests = 0
        self.retries = 0
        self._sleep = sleep

    @classmethod
    def from_kubeconfig(
        cls, path: str | None = None, context: str | None = None, qps: float = 5, burst: int = 10
    ) -> Kube:
        """A client for ``context`` of the kubeconfig at ``path`` (or $KUBECONFIG); inside a
        pod with neither, the pod's service account."""
        if (
            path is None
            and not os.environ.get("KUBECONFIG")
            and not os.path.exists(os.path.expanduser("~/.kube/config"))
            and os.environ.get("KUBERNETES_SERVICE_HOST")
        ):
            configuration = k8s.Configuration()
            try:
                k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            except k8s_config.ConfigException as exc:
                raise ConfigError(f"in-cluster config: {exc}") from None
            return cls(_api_client(configuration), TokenBucket(qps, burst))
        configuration = k8s.Configuration()
        try:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path, context=context, client_configuration=configuration
            )
        except (k8s_config.ConfigException, OSError) as exc:
            where = path or "$KUBECONFIG or ~/.kube/config"
            raise ConfigError(f"{where}: cannot load kubeconfig: {exc}") from None
        return cls(_api_client(configuration), TokenBucket(qps, burst))

    @classmethod
    def from_token(
        cls, server: str, token: str, ca_file: str, qps: float = 5, burst: int = 10
    ) -> Kube:
        """A client for ``server`` authenticating with a bearer ``token``."""
        configuration = k8s.Configuration()
        configuration.host = server
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        configuration.ssl_ca_cert = ca_file
        return cls(_api_client(configuration), TokenBucket(qps, burst))

    def get(self, path: str, query: dict[str, str] | None = None) -> JSON:
        """GET one object (or one page)."""
        return self.request("GET", path, query=query)

    def exists(self, path: str) -> bool:
        """True when GET ``path`` finds something."""
        try:
            self.get(path)
        except PermanentKubernetesError as exc:
            if "404" in exc.message:
                return False
            raise
        return True

    def list(
        self,
        path: str,
        query: dict[str, str] | None = None,
        page: int = 500,
        metadata_only: bool = False,
    ) -> Iterator[JSON]:
        """Every item of a collection, ``page`` at a time (``limit``/``continue``).

        ``metadata_only`` asks for PartialObjectMetadata: names, labels and timestamps
        without the payload (Secrets' data never leaves the API server).
        """
        params = {**(query or {}), "limit": str(page)}
        accept = METADATA_ONLY if metadata_only else "application/json"
        while True:
            answer = self.request("GET", path, query=params, accept=accept)
            yield from answer.get("items") or []
            token = answer.get("metadata", {}).get("continue")
            if not token:
                return
            params["continue"] = token

    def watch(
        self, path: str, query: dict[str, str] | None = None, read_timeout: float = 330.0
    ) -> WatchStream:
        """One WATCH of ``path`` (a token first, never retried here): its events as they
        come, until the server ends it or ``WatchStream.close()`` (``kube_watch``)."""
        self.bucket.acquire()
        self.requests += 1
        return open_watch(self.api_client, path, query or {}, (self.timeout, read_timeout))

    def create(self, path: str, body: JSON, dry_run: bool = False) -> JSON:
        """POST ``body`` to the collection at ``path``."""
        return self.request("POST", path, body=body, dry_run=dry_run)

    def patch(self, path: str, body: Any, kind: str = "merge", dry_run: bool = False) -> JSON:
        """PATCH with a merge, JSON or strategic-merge patch."""
        return self.request(
            "PATCH", path, body=body, content_type=PATCH_TYPES[kind], dry_run=dry_run
        )

    def delete(self, path: str, dry_run: bool = False) -> JSON:
        """DELETE the object at ``path``."""
        return self.request("DELETE", path, dry_run=dry_run)

    def request(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        dry_run: bool = False,
        accept: str = "application/json",
    ) -> JSON:
        """One call, rate-limited, retried on transient failures within ``total_timeout``."""
        params = dict(query or {})
        if dry_run:
            params["dryRun"] = "All"
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(self.total_timeout),
            wait=_wait,
            retry=tenacity.retry_if_exception_type(TransientKubernetesError)
            & tenacity.retry_if_not_exception_type(Conflict),
            sleep=self._sleep,
            before_sleep=self._count_retry,
            reraise=True,
        )
        result: JSON = retrying(self._once, method, path, params, body, content_type, accept)
        return result

    def _count_retry(self, state: tenacity.RetryCallState) -> None:
        self.retries += 1

    def note_retry(self) -> None:
        """Count a retry made by a caller (a watch opened again after a 429 or 5xx), so that
        ``retries`` covers every request guardian sends again, not only ``request``'s own."""
        self.retries += 1

    def _once(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        body: Any,
        content_type: str,
        accept: str,
    ) -> JSON:
        self.bucket.acquire()
        self.requests += 1
        try:
            verb, url, headers, payload, post = self.api_client.param_serialize(
                method,
                path,
                query_params=list(params.items()),
                header_params={"Accept": accept, "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.api_client.call_api(
                verb,
                url,
                header_params=headers,
                body=payload,
                post_params=post,
                _request_timeout=self.timeout,
            )
            raw = response.read()
        except ApiException as exc:
            raise _classify(method, path, int(exc.status or 0), exc.body, exc.headers) from None
        except urllib3.exceptions.HTTPError as exc:
            raise TransientKubernetesError(f"{method} {path}: {type(exc).__name__}") from None
        if not 200 <= response.status < 300:
            raise _classify(method, path, response.status, raw, response.headers)
        decoded: JSON = json.loads(raw) if raw else {}
        return decoded


def _api_client(configuration: Any) -> Any:
    """An API client whose connection pool retries nothing by itself: urllib3 would otherwise
    resend a GET answered 429 with Retry-After, past guardian's token bucket. Every retry is
    guardian's own (``Kube.request``), and waits for a token."""
    configuration.retries = urllib3.util.Retry(total=0, respect_retry_after_header=False)
    return k8s.ApiClient(configuration)


def _classify(method: str, path: str, status: int, body: Any, headers: Any) -> KubernetesError:
    message = f"{method} {path}: HTTP {status} {_reason(body)}".rstrip()
    if status == 409:
        return Conflict(message)
    if status == 429:
        retry_after = float((headers or {}).get("Retry-After") or 1)
        return Throttled(message, retry_after)
    if status >= 500 or status == 0:
        return TransientKubernetesError(message)
    return PermanentKubernetesError(message)


def _reason(body: Any) -> str:
    try:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
        return str(json.loads(text or "{}").get("message", ""))
    except (ValueError, AttributeError):
        return ""


def _wait(state: tenacity.RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, Throttled):
        return error.retry_after
    return float(min(0.5 * 2 ** (state.attempt_number - 1), 8.0))


def read_modify_write(
    kube: Kube, path: str, change: Callable[[JSON], JSON], attempts: int = 5
) -> JSON:
    """GET, change, PUT; on a 409 conflict read again and retry (at most ``attempts``)."""
    for _ in range(attempts - 1):
        current = kube.get(path)
        try:
            return kube.request("PUT", path, body=change(current))
        except Conflict:
            continue
    return kube.request("PUT", path, body=change(kube.get(path)))


def kube_client_version() -> str:
    """Version of the kubernetes Python client in use."""
    return str(getattr(k8s, "__version__", "unknown"))
