"""The composition root: the store, the Kubernetes clients, the executor and the cycle.

Input: a loaded config (and the parsed flags for the Kubernetes client). Output: the store
(``open_store``, ``opened``), the playbooks (``playbooks_of``), the pool of Kubernetes clients
(``KubePool``), the Slack notifier (``notifier``, with ``guardian.app.charts``), the executor
(``runner``, ``console_runner``; its verification signals on a Prometheus client of their
own), the cycle and its Prometheus client (``parts``, built again on each reload), and
``ChatOps`` (``chat_ops``); ``Service`` holds what a process that keeps running is made of.
Called by the console commands (``guardian.app.commands``: approvals, cluster, evaluate,
playbooks, switch) and the daemon (``guardian.app.daemon``: commands, reload, run), which get
those parts from here. Not built here: ``eval``, ``backtest`` and ``playbook run`` open their
own Prometheus client, as does each burn chart (``guardian.app.charts``); the daemon builds
its Lease, Slack app, scheduler, metrics and HTTP port itself (``guardian.app.daemon.run``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from guardian.actions import CATALOGUE
from guardian.app.charts import burn_chart
from guardian.app.chatops import ChatOps
from guardian.clients.apf import ApfClient
from guardian.clients.change_sources import FallbackChangeLog
from guardian.clients.change_watch import WatchChangeLog
from guardian.clients.kube import Kube
from guardian.clients.prometheus import PrometheusClient
from guardian.clients.store import Store
from guardian.config import Config, load_config
from guardian.errors import ConfigError, UsageError
from guardian.evaluation.change_log import PrometheusChangeLog
from guardian.evaluation.results import Evaluation
from guardian.evaluation.run import PrometheusSignals
from guardian.executor.runner import Notifier, Runner, Silent
from guardian.pipeline import Cycle
from guardian.planning.trigger import trigger_context
from guardian.playbooks import Playbook, load_playbooks

SUSPECT_WINDOW = timedelta(minutes=30)
"""How far back ``/guardian suspects`` looks."""


def open_store(config: Config) -> Store:
    """The store the config names (``url_env`` wins when set); a store that cannot be
    opened is a one-line ``StoreUnavailable`` (exit 3) naming it with its password masked
    and saying which setting to correct."""
    policy = config.policy
    url, source = policy.store_url, "policy.store.url"
    if policy.store_url_env:
        url, source = os.environ.get(policy.store_url_env, ""), f"${policy.store_url_env}"
        if not url:
            raise UsageError(
                f"policy: store: url_env: environment variable {policy.store_url_env} is not set"
            )
    return Store.open(url, source)


@contextmanager
def opened(path: str) -> Iterator[tuple[Config, Store]]:
    """The config at ``path`` and its store, closed when the block ends (the console
    commands that read or write executions)."""
    config = load_config(path)
    store = open_store(config)
    try:
        yield config, store
    finally:
        store.close()


def playbooks_of(config: Config) -> dict[str, Playbook]:
    """The playbooks the config's policy points at."""
    params = {name: action.params for name, action in CATALOGUE.items()}
    return load_playbooks(config.policy.playbook_paths, params, [s.name for s in config.slos])


@dataclass
class KubePool:
    """One Kubernetes client per kubeconfig context, built on first use (``--kubeconfig``,
    ``--qps``, ``--burst``; ``None`` is ``--context``, else the current context)."""

    kubeconfig: str | None = None
    context: str | None = None
    qps: float = 5.0
    burst: int = 10
    clients: dict[str | None, Kube] = field(default_factory=dict)

    @classmethod
    def of(cls, args: argparse.Namespace) -> KubePool:
        """The pool the flags of ``guardian.app.args.kube_args`` ask for."""
        return cls(args.kubeconfig, args.context, args.qps, args.burst)

    def __call__(self, context: str | None = None) -> Kube:
        key = context or self.context
        if key not in self.clients:
            self.clients[key] = Kube.from_kubeconfig(self.kubeconfig, key, self.qps, self.burst)
        return self.clients[key]


def notifier(
    config: Config, store: Store, books: dict[str, Playbook], required: bool = False
) -> Notifier:
    """Slack when the config has a ``slack`` section, else nobody (the console prints).

    The console path must work without Slack: unless ``required`` (a daemon), a bot token
    that cannot be read gives a warning and no Slack messages instead of an error."""
    if config.slack is None:
        return Silent()
    from guardian.approval.notify import SlackNotifier
    from guardian.clients.slack import SlackClient

    try:
        client = SlackClient.from_settings(config.slack)
    except ConfigError as exc:
        if required:
            raise
        print(f"guardian: warning: no Slack messages: {exc.message}", file=sys.stderr)
        return Silent()
    return SlackNotifier(
        client, config.slack.channel, store, books, lambda slo: burn_chart(config, slo)
    )


def runner(
    config: Config,
    store: Store,
    books: dict[str, Playbook],
    kube: KubePool,
    owner: str,
    daemon: bool = False,
    lease: int | None = None,
) -> Runner:
    """The executor: ``owner`` holds its executions' leases (``lease`` seconds, else the
    executor's default); a ``daemon`` refuses to start without its Slack token."""
    executor = Runner(
        store,
        books,
        kube,
        PrometheusSignals.of(config, PrometheusClient(config.prometheus)),
        notifier=notifier(config, store, books, required=daemon),
        owner=owner,
        approval_timeout=config.policy.approval_timeout,
        max_changes=config.policy.max_changes,
        protected_subjects=config.policy.protected_subjects,
    )
    if lease is not None:
        executor.lease = lease
    return executor


def configure(executor: Runner, config: Config, books: dict[str, Playbook]) -> None:
    """Give a running executor the policy and the verification signals of a reloaded config:
    its SLOs, windows and query settings; a new Prometheus client only when the
    ``prometheus`` section changed (the old one is closed then: a verification query in
    flight on it fails as Prometheus being down does). Tests: tests/test_app_defects.py."""
    executor.playbooks = books
    old = executor.signals
    client = getattr(old, "source", None)
    if isinstance(client, PrometheusClient) and client.settings == config.prometheus:
        executor.signals = PrometheusSignals.of(config, client)
    else:
        executor.signals = PrometheusSignals.of(config, PrometheusClient(config.prometheus))
        if isinstance(client, PrometheusClient):
            client.close()
    executor.approval_timeout = config.policy.approval_timeout
    executor.max_changes = config.policy.max_changes
    executor.protected_subjects = config.policy.protected_subjects


@dataclass
class Parts:
    """What one loaded config builds for a running process; swapped whole on reload."""

    config: Config
    books: dict[str, Playbook]
    prometheus: PrometheusClient
    cycle: Cycle


def parts(
    config: Config,
    books: dict[str, Playbook],
    store: Store,
    executor: Runner,
    watch: WatchChangeLog | None = None,
) -> Parts:
    """The cycle of ``config`` with a Prometheus client of its own (close it with the parts).
    Its change log is ``watch`` once synced, kube-state-metrics in that Prometheus otherwise;
    its top talkers come from the API server's APF debug data."""
    prometheus = PrometheusClient(config.prometheus)
    kube = executor.kube_for(None)
    changes = FallbackChangeLog(watch, PrometheusChangeLog(prometheus))
    apf = ApfClient(kube, prometheus) if isinstance(kube, Kube) else None
    cycle = Cycle(config, books, store, executor, kube, prometheus, changes=changes, apf=apf)
    cycle.advance_now = False  # the daemon's progress job moves the runs it proposes
    return Parts(config, books, prometheus, cycle)


def chat_ops(service: Service, leading: Callable[[], bool] = lambda: True) -> ChatOps | None:
    """What Slack users may ask (None without a ``slack`` section), answered with the
    service's current parts: its cycle evaluates, its executor decides."""
    settings = service.parts.config.slack
    if settings is None:
        return None
    from guardian.clients.slack import SlackClient
    from guardian.planning.suspects import find_suspects

    kube = service.kube(None)

    def evaluate_now() -> Evaluation:  # within evaluation_budget, as the daemon's own
        return service.parts.cycle.evaluate()

    def suspects_now() -> list[dict[str, Any]]:
        return [s.to_json() for s in find_suspects(kube, datetime.now(UTC), SUSPECT_WINDOW)]

    def context_for(book: Playbook, params: dict[str, str]) -> tuple[dict[str, Any], str]:
        now = service.parts
        apf = ApfClient(kube, now.prometheus)
        return trigger_context(
            now.config, book, kube, params, now.prometheus, changes=now.cycle.changes, apf=apf
        )

    return ChatOps(
        service.runner,
        service.store,
        settings,
        SlackClient.from_settings(settings),
        service.runner.playbooks,
        evaluate_now,
        suspects_now,
        context_for,
        leading=leading,
    )


@dataclass
class Service:
    """What a process that keeps running is built of (``guardian run``, ``guardian slack``):
    one store, one pool of Kubernetes clients, one executor, the parts of the loaded config
    and, with Slack, one ``ChatOps``."""

    store: Store
    kube: KubePool
    runner: Runner
    parts: Parts
    chat: ChatOps | None = None
    watch: WatchChangeLog | None = None
    """The change log's watches of the API server, started once and kept across reloads."""

    @classmethod
    def build(
        cls,
        config: Config,
        kube: KubePool,
        owner: str,
        lease: int | None,
    ) -> Service:
        """Open the store, load the playbooks, build the executor and the parts (``chat``
        is the daemon's to build: it knows whether this process leads)."""
        store = open_store(config)
        kube(None)  # the kubeconfig is checked before the playbooks are read
        books = playbooks_of(config)
        executor = runner(config, store, books, kube, owner, daemon=True, lease=lease)
        watch = WatchChangeLog(kube(None)).start()
        built = parts(config, books, store, executor, watch)
        return cls(store, kube, executor, built, watch=watch)

    def reload(self, config: Config, books: dict[str, Playbook]) -> None:
        """Swap in the parts of a new, checked config; the store and clients stay."""
        configure(self.runner, config, books)
        if self.chat is not None:
            self.chat.playbooks = books
        old, self.parts = self.parts, parts(config, books, self.store, self.runner, self.watch)
        old.prometheus.close()

    def close(self) -> None:
        """Stop the change log's watches; close the Prometheus client and the store."""
        if self.watch is not None:
            self.watch.stop()
        self.parts.prometheus.close()
        self.store.close()


def console_runner(
    args: argparse.Namespace, config: Config, store: Store, books: dict[str, Playbook]
) -> Runner:
    """The executor of a console command: the person at the console (``--as``) on this host
    holds the leases, and a Slack token that cannot be read is a warning."""
    import socket

    from guardian.app.args import actor

    owner = f"console:{actor(args)}@{socket.gethostname()}"
    return runner(config, store, books, KubePool.of(args), owner)
