"""APF's own view of the API server's clients: its request dump and its flow-schema series.

Input: a ``Kube`` client (its token bucket and credentials) and, optionally, Prometheus (any
``QuerySource``: ``guardian.clients.prometheus.PrometheusClient``). Output: ``ApfClient``, the
``guardian.planning.talkers.ApfReader`` port: ``dump_requests`` (the text of
``/debug/api_priority_and_fairness/dump_requests?includeRequestDetails=1``, one GET through
the client's token bucket, not retried: ``top_talkers`` samples several times and skips a
failed sample) and ``flows`` (``FlowLoad`` per flow schema and priority level: requests in
queue, executing, seats in use and the rejected rate, from the ``apiserver_flowcontrol_*``
series). Reading the dump needs ``get`` on the non-resource URL
``/debug/api_priority_and_fairness/*`` (``deploy/rbac/guardian-rbac.yaml``); without it the
403 says so. Built by its callers with the clients they hold (the lab test of the ranking,
``tests/test_talkers_lab.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from guardian.clients.kube import Kube
from guardian.errors import (
    KubernetesError,
    PermanentKubernetesError,
    TransientKubernetesError,
)
from guardian.evaluation.source import QuerySource
from guardian.planning.talkers import FlowLoad

DUMP = "/debug/api_priority_and_fairness/dump_requests"
BY_FLOW = "sum by (flow_schema, priority_level)"
SERIES = {
    "inqueue": BY_FLOW + " (apiserver_flowcontrol_current_inqueue_requests{selector})",
    "executing": BY_FLOW + " (apiserver_flowcontrol_current_executing_requests{selector})",
    "seats": BY_FLOW + " (apiserver_flowcontrol_current_executing_seats{selector})",
    "rejected": BY_FLOW
    + " (rate(apiserver_flowcontrol_rejected_requests_total{selector}[{window}]))",
}
"""The PromQL of each ``FlowLoad`` field (``rejected``: a rate over ``window``); ``selector``
(e.g. ``{cluster="lab"}``) keeps one API server's series when Prometheus scrapes several."""


class ApfClient:
    """``ApfReader`` over one API server and, when given, the Prometheus that scrapes it."""

    def __init__(
        self,
        kube: Kube,
        prometheus: QuerySource | None = None,
        window: str = "1m",
        selector: str = "",
    ) -> None:
        self.kube = kube
        self.prometheus = prometheus
        self.window = window
        self.selector = selector

    def dump_requests(self) -> str:
        """One dump of every request APF holds, with user, verb and path."""
        return text_get(self.kube, DUMP, {"includeRequestDetails": "1"})

    def flows(self, at: datetime | None = None) -> Sequence[FlowLoad]:
        """Each flow schema's load now (``at``: then); empty without Prometheus."""
        if self.prometheus is None:
            return []
        values: dict[tuple[str, str], dict[str, float]] = {}
        for field, promql in SERIES.items():
            for sample in self.prometheus.instant(
                promql.format(window=self.window, selector=self.selector), at
            ):
                key = (
                    sample.labels.get("flow_schema", ""),
                    sample.labels.get("priority_level", ""),
                )
                values.setdefault(key, {})[field] = float(sample.value)
        loads = [FlowLoad(schema, level, **fields) for (schema, level), fields in values.items()]
        return sorted(loads, key=lambda f: (-(f.inqueue + f.executing), f.flow_schema))


def text_get(kube: Kube, path: str, query: dict[str, str] | None = None) -> str:
    """GET ``path`` as text, through ``kube``'s token bucket and credentials, once."""
    kube.bucket.acquire()
    kube.requests += 1
    client: Any = kube.api_client
    try:
        verb, url, headers, payload, post = client.param_serialize(
            "GET",
            path,
            query_params=list((query or {}).items()),
            header_params={"Accept": "text/plain"},
            auth_settings=["BearerToken"],
        )
        response = client.call_api(
            verb,
            url,
            header_params=headers,
            body=payload,
            post_params=post,
            _request_timeout=kube.timeout,
        )
        raw: bytes = response.read()
    except ApiException as exc:
        raise _error(path, int(exc.status or 0)) from None
    except urllib3.exceptions.HTTPError as exc:
        raise TransientKubernetesError(f"GET {path}: {type(exc).__name__}") from None
    if not 200 <= response.status < 300:
        raise _error(path, response.status)
    return raw.decode("utf-8", "replace")


def _error(path: str, status: int) -> KubernetesError:
    message = f"GET {path}: HTTP {status}"
    if status == 403:
        return PermanentKubernetesError(
            f"{message}: guardian may not read APF's dump; grant get on nonResourceURLs "
            '["/debug/api_priority_and_fairness/*"] (deploy/rbac/guardian-rbac.yaml)'
        )
    if status == 404:
        return PermanentKubernetesError(f"{message}: this API server serves no APF debug dump")
    if status >= 500 or status in (0, 429):
        return TransientKubernetesError(message)
    return PermanentKubernetesError(message)
