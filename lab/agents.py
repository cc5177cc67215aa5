"""The storm's agents: the DaemonSet's rollout → one simulated node agent per storming pod.

Run by ``load`` (``lab load`` spawns ``load.py run``, which calls ``main``). About every
``FOLLOW_SECONDS`` the follower reads, as the admin (exempt from API Priority and Fairness,
like the lab's other bookkeeping), the DaemonSet ``telemetry/telemetry-agent`` and its pods.
An agent runs on each node whose agent pod is Running and carries ``STORM`` in its
annotations (``lab load``'s template has it, a template rolled back to one without it has
not, a quarantined DaemonSet has no pods), so the agents started follow the rollout: with
the template updated pod by pod they are the DaemonSet's ``updatedNumberScheduled``
(``tests/test_lab_agents.py``).

Each agent behaves like a real node agent, authenticated as the agents' ServiceAccount
``telemetry/telemetry-agent`` (a bound token): an informer on nodes (a LIST of every node, a
WATCH from its resourceVersion, a WATCH resumed from the last event after its timeout, a LIST
again when a watch breaks: a 429, a 410 Gone, a 5xx, a dropped connection, with a client-go
like back-off) and, at ``per_agent_qps``, a repeating round of LISTs: its node's pods by field
selector ``spec.nodeName``, every pod, every node, each once with ``resourceVersion=0`` (served
from the watch cache) and once without (a consistent read). Requests are sent on schedule
whether the previous ones have answered (an open loop, as hundreds of independent pods
would), at most ``workers`` of these LISTs in flight (more are counted ``skipped``; the
informers' LISTs and WATCHes are not limited). The machine cannot
send 20/s from 2,000 agents: the rate is shrunk, never the answers, so that all agents
together send at most ``max_qps`` (``per_agent_qps`` = min(per-pod QPS, max_qps / agents)).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

NAMESPACE = "telemetry"
NAME = "telemetry-agent"
STORM = "lab.guardian.io/storm"
"""The pod annotation that marks a storming agent (``lab load``'s template sets it "true")."""
FOLLOW_SECONDS = 2.0
REPORT_SECONDS = 5.0
WATCH_TIMEOUT = (30, 60)
"""A watch's ``timeoutSeconds``, drawn per watch (client-go draws 5-10 min; minutes are too
long for a lab run)."""
BACKOFF = (0.8, 30.0)
"""client-go's reflector back-off: 800 ms doubling to 30 s."""


def rounds(node: str) -> list[str]:
    """The LISTs of one agent's round, in order."""
    mine = f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node}"
    return [
        mine,
        "/api/v1/pods",
        "/api/v1/nodes?resourceVersion=0",
        f"{mine}&resourceVersion=0",
        "/api/v1/pods?resourceVersion=0",
        "/api/v1/nodes",
    ]


@dataclass
class Counters:
    """What the agents did since the last report."""

    codes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    skipped: int = 0
    relists: int = 0
    watch_breaks: dict[str, int] = field(default_factory=dict)

    def add(self, code: str, seconds: float) -> None:
        self.codes[code] = self.codes.get(code, 0) + 1
        self.seconds += seconds

    def take(self) -> dict[str, Any]:
        done = sum(self.codes.values())
        report = {
            "codes": self.codes,
            "mean_seconds": round(self.seconds / done, 3) if done else None,
            "skipped": self.skipped,
            "relists": self.relists,
            "watch_breaks": self.watch_breaks,
        }
        self.codes, self.seconds, self.skipped, self.relists = {}, 0.0, 0, 0
        self.watch_breaks = {}
        return report


@dataclass
class Storm:
    """The shared state of one load process."""

    base: str
    token: str
    ssl: ssl.SSLContext
    per_pod_qps: float
    max_qps: float
    workers: int
    counters: Counters = field(default_factory=Counters)
    inflight: int = 0
    watches: int = 0
    agents: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def per_agent_qps(self) -> float:
        return min(self.per_pod_qps, self.max_qps / max(1, len(self.agents)))

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def _list(storm: Storm, http: aiohttp.ClientSession, path: str) -> None:
    began = time.monotonic()
    try:
        async with http.get(storm.base + path, headers=storm.headers(), ssl=storm.ssl) as answer:
            await answer.read()
            code = str(answer.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        code = type(exc).__name__
    finally:
        storm.inflight -= 1
    storm.counters.add(code, time.monotonic() - began)


async def _polls(storm: Storm, http: aiohttp.ClientSession, node: str) -> None:
    """The agent's round of LISTs, on schedule."""
    paths = rounds(node)
    at = time.monotonic() + random.uniform(0, 1 / storm.per_agent_qps())
    for index in itertools.count():
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        at = max(at + 1 / storm.per_agent_qps(), time.monotonic() - 1)  # a late loop: no burst
        if storm.inflight >= storm.workers:
            storm.counters.skipped += 1
            continue
        storm.inflight += 1
        task = asyncio.create_task(_list(storm, http, paths[index % len(paths)]))
        storm.tasks.add(task)  # the loop keeps weak references only
        task.add_done_callback(storm.tasks.discard)


async def _informer(storm: Storm, http: aiohttp.ClientSession) -> None:
    """LIST every node, WATCH from there; resume after a timeout, LIST again after a break."""
    version: str | None = None
    delay = BACKOFF[0]
    while True:
        if version is None:
            storm.counters.relists += 1
            version, code = await _list_version(storm, http)
            if version is None:
                storm.counters.watch_breaks[code] = storm.counters.watch_breaks.get(code, 0) + 1
                await asyncio.sleep(delay * random.uniform(1, 1.5))
                delay = min(BACKOFF[1], delay * 2)
                continue
        version, broke = await _watch(storm, http, version)
        if broke:
            storm.counters.watch_breaks[broke] = storm.counters.watch_breaks.get(broke, 0) + 1
            version = None
            await asyncio.sleep(delay * random.uniform(1, 1.5))
            delay = min(BACKOFF[1], delay * 2)
        else:
            delay = BACKOFF[0]


async def _list_version(storm: Storm, http: aiohttp.ClientSession) -> tuple[str | None, str]:
    """A LIST of every node (a consistent read, as a reflector's re-list); its version."""
    began = time.monotonic()
    try:
        url = f"{storm.base}/api/v1/nodes"
        async with http.get(url, headers=storm.headers(), ssl=storm.ssl) as answer:
            body = await answer.read()
            code = str(answer.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        body, code = b"", type(exc).__name__
    storm.counters.add(code, time.monotonic() - began)
    if code != "200":
        return None, code
    return _list_resource_version(body), code


_HEAD_VERSION = re.compile(
    rb'\{"kind":"\w+","apiVersion":"[\w./]+","metadata":\{"resourceVersion":"(\d+)"'
)


def _list_resource_version(body: bytes) -> str:
    """A list's ``metadata.resourceVersion``. The API server writes it before the items, so the
    head of the body holds it (a body that does not start so is decoded whole). Decoding a list
    of 2,000 KWOK nodes (7.9 MB) took 0.3 s of the load process's CPU, which shares the 2 cores
    with the API server; the head, 3 µs. ``tests/test_lab_agents.py`` checks the head is read."""
    found = _HEAD_VERSION.match(body)
    if found is not None:
        return found.group(1).decode()
    return str(json.loads(body)["metadata"]["resourceVersion"])


async def _watch(storm: Storm, http: aiohttp.ClientSession, version: str) -> tuple[str | None, str]:
    """One WATCH of nodes from ``version``: (the last version seen, "" or why it broke)."""
    params = {
        "watch": "1",
        "resourceVersion": version,
        "allowWatchBookmarks": "true",
        "timeoutSeconds": str(random.randint(*WATCH_TIMEOUT)),
    }
    storm.watches += 1
    try:
        async with http.get(
            f"{storm.base}/api/v1/nodes", params=params, headers=storm.headers(), ssl=storm.ssl
        ) as answer:
            if answer.status != 200:
                await answer.read()
                return None, str(answer.status)
            async for line in answer.content:
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    return None, str(event["object"].get("code", "ERROR"))
                version = str(event["object"]["metadata"]["resourceVersion"])
        return version, ""
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return None, type(exc).__name__
    finally:
        storm.watches -= 1


async def _agent(storm: Storm, polls: aiohttp.ClientSession, watches: Any, node: str) -> None:
    informer = asyncio.create_task(_informer(storm, watches))
    try:
        await _polls(storm, polls, node)
    finally:
        informer.cancel()


async def _storming_nodes(
    admin: aiohttp.ClientSession, base: str
) -> tuple[set[str], dict[str, Any]]:
    """The nodes whose agent pod runs a storming template, and the DaemonSet's status."""
    ds_path = f"{base}/apis/apps/v1/namespaces/{NAMESPACE}/daemonsets/{NAME}"
    async with admin.get(ds_path) as answer:
        status = (await answer.json()).get("status", {}) if answer.status == 200 else {}
    pods_path = f"{base}/api/v1/namespaces/{NAMESPACE}/pods"
    params = {"labelSelector": f"app={NAME}", "resourceVersion": "0"}
    async with admin.get(pods_path, params=params) as answer:
        pods = (await answer.json()).get("items", []) if answer.status == 200 else []
    nodes = {
        pod["spec"]["nodeName"]
        for pod in pods
        if pod.get("status", {}).get("phase") == "Running"
        and not pod["metadata"].get("deletionTimestamp")
        and pod["metadata"].get("annotations", {}).get(STORM) == "true"
        and pod["spec"].get("nodeName")
    }
    return nodes, status


async def _follow(storm: Storm, admin: aiohttp.ClientSession, make: Any) -> dict[str, Any]:
    """Start an agent on each storming node, stop those whose pod went; the rollout's figures."""
    try:
        nodes, status = await _storming_nodes(admin, storm.base)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return {"follow_error": type(exc).__name__}
    for node in set(storm.agents) - nodes:
        storm.agents.pop(node).cancel()
    for node in nodes - set(storm.agents):
        storm.agents[node] = asyncio.create_task(make(node))
    return {
        "desired": status.get("desiredNumberScheduled", 0),
        "updated": status.get("updatedNumberScheduled", 0),
        "number_ready": status.get("numberReady", 0),
    }


async def main(base: str, admin_token: str, token: str, ca: Path, args: dict[str, float]) -> None:
    """The load process: follow the rollout, run its agents, report every 5 s (stdout)."""
    context = ssl.create_default_context(cafile=str(ca))
    storm = Storm(base, token, context, args["per_pod_qps"], args["max_qps"], int(args["workers"]))
    timeout = aiohttp.ClientTimeout(total=30)
    admin = aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {admin_token}"},
        connector=aiohttp.TCPConnector(ssl=context, limit=4),
        timeout=timeout,
    )
    polls = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=storm.workers), timeout=timeout
    )
    watches = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=90),
    )
    started = last_report = time.monotonic()
    rollout: dict[str, Any] = {}
    while True:
        rollout = await _follow(storm, admin, lambda n: _agent(storm, polls, watches, n))
        now = time.monotonic()
        if now - last_report >= REPORT_SECONDS:
            last_report = now
            agents = len(storm.agents)
            line = {
                "t": round(now - started, 1),
                "running_agents": agents,
                **rollout,
                "per_agent_qps": round(storm.per_agent_qps(), 3) if agents else 0.0,
                "target_qps": round(agents * storm.per_agent_qps(), 1) if agents else 0.0,
                "watches": storm.watches,
                "inflight": storm.inflight,
                **storm.counters.take(),
            }
            print(json.dumps(line), flush=True)
        await asyncio.sleep(FOLLOW_SECONDS)
