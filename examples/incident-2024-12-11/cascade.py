"""Act 3 of ``make demo``: without guardian, the DNS cascade on the lab, read from Prometheus.

Lab directory → ``Cascade`` (what the act did, and the SLOs' page episodes from Prometheus'
series) → the timeline's text. Run as a script it starts a lab of its own (10 KWOK nodes) in a
temporary directory and stops it at the end, also on failure, Ctrl-C or SIGTERM; its
functions (``run``, ``timeline``) are also what ``tests/test_dns_cascade.py`` runs on its lab.

1. ``lab dns start --qps 40 --ttl 10 --shared-flow``: node-local caches resolving Service names
   through CoreDNS (TTL 10 s), CoreDNS in the storm's APF flow (``lab/dns.py`` says why);
2. once guardian's evaluation finds ``apiserver-rejections`` and ``dns-errors`` ok, the storm:
   ``lab load --filler-pods 300 --per-pod-qps 60``;
3. once ``apiserver-rejections`` (the 429 ratio) pages, ``lab dns restart-coredns`` (a
   crash-looping CoreDNS), again up to five times while a restart still syncs through the storm;
4. once ``dns-errors`` (the SERVFAIL ratio of ``coredns_dns_responses_total``, as in
   ``config/slos.yaml``) pages, ``lab load --stop``; then both SLOs stop paging;
5. guardian's replay of the lab's SLOs (``guardian.yaml``, 2 s steps) over Prometheus' series
   gives the pages and recoveries of the timeline, not the times the act waited for them.

Nothing here runs guardian's daemon: this is what happens without it (act 2, ``live.py``,
halts the change instead).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import requests

from guardian.clients.prometheus import PrometheusClient
from guardian.config import load_config
from guardian.config.model import Config
from guardian.evaluation.backtest import Episode, episodes
from guardian.evaluation.run import evaluate, replay

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LAB = ROOT / "lab" / "lab"
NODES = 10
API_SLO = "apiserver-rejections"
DNS_SLO = "dns-errors"
STEP = 2
"""Seconds between the replay's steps."""
RESTARTS = 5
CLIENTS = ("--qps", "40", "--ttl", "10", "--shared-flow")
STORM = ("--filler-pods", "300", "--per-pod-qps", "60")
EVENTS = (
    "storm",
    "API-server SLO page",
    "CoreDNS restart",
    "DNS SLO page",
    "storm stopped",
    "API-server recovered",
    "DNS recovered",
)
"""The timeline's events, each a line of ``timeline`` (one line per CoreDNS restart)."""


class CascadeError(RuntimeError):
    """A lab command failed or a step of the cascade did not come in time."""


@dataclass(frozen=True)
class Restart:
    """One ``lab dns restart-coredns``: when it began, whether CoreDNS synced, what it said."""

    at: float
    synced: bool
    said: str


@dataclass(frozen=True)
class Cascade:
    """What the act did (wall-clock seconds) and the page episodes Prometheus' series give."""

    directory: Path
    storm: float
    restarts: tuple[Restart, ...]
    restarted: float
    """When the last restart returned."""
    stop: float
    end: float
    synced_at_stop: bool
    api: list[Episode]
    dns: list[Episode]

    @property
    def restart(self) -> float:
        """When the first restart began."""
        return self.restarts[0].at

    @property
    def restart_said(self) -> str:
        """What the last restart printed."""
        return self.restarts[-1].said


def lab(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``lab <args>`` on the lab in ``directory``, its output captured."""
    env = {**os.environ, "GUARDIAN_LAB_DIR": str(directory)}
    cmd = [str(LAB), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)


def _lab(directory: Path, *args: str) -> str:
    done = lab(directory, *args)
    if done.returncode != 0:
        raise CascadeError(f"lab {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return done.stderr


def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise CascadeError(f"not within {timeout:.0f}s: {what}")


class _Lab:
    """The lab's guardian config, Prometheus and CoreDNS, as the act reads them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.config: Config = load_config(directory / "guardian.yaml")
        self.client = PrometheusClient(self.config.prometheus)
        self.ports: dict[str, int] = json.loads((directory / "state.json").read_text())["ports"]

    def status(self, name: str) -> str:
        """The SLO's status now, as guardian's evaluation finds it."""
        evaluation, _ = evaluate([s for s in self.config.slos if s.name == name], self.client)
        return str(evaluation.slos[0].status)

    def synced(self) -> bool:
        """Whether CoreDNS is ready (its kubernetes plugin synced)."""
        url = f"http://127.0.0.1:{self.ports['coredns-ready']}/ready"
        return requests.get(url, timeout=5).status_code == 200


def run(directory: Path, say: Callable[[str], None] = print) -> Cascade:
    """The cascade on the running lab in ``directory``, each step announced through ``say``;
    the storm is stopped whatever happens once it started."""
    it = _Lab(directory)
    say(f"$ lab dns start {' '.join(CLIENTS)}   # CoreDNS restarts with TTL 10 s; the clients")
    _lab(directory, "dns", "start", *CLIENTS)
    for name in (API_SLO, DNS_SLO):
        say(f"waiting for guardian's evaluation of {name} to be ok")
        _until(lambda n=name: it.status(n) == "ok", 60, f"{name} is ok")  # type: ignore[misc]
    say(f"$ lab load {' '.join(STORM)}   # the storm: filler pods, the telemetry DaemonSet")
    storm = time.time()
    _lab(directory, "load", *STORM)
    try:
        say(f"waiting for {API_SLO} (the 429 ratio) to page")
        _until(lambda: it.status(API_SLO) == "page", 120, f"{API_SLO} pages")
        restarts = _restart(directory, say)
        restarted = time.time()
        say(f"waiting for {DNS_SLO} (the SERVFAIL ratio) to page")
        _until(lambda: it.status(DNS_SLO) == "page", 60, f"{DNS_SLO} pages")
        synced_at_stop = it.synced()
    finally:
        stop = time.time()
        say("$ lab load --stop   # the storm ends, as responders ended it on 2024-12-11")
        _lab(directory, "load", "--stop")
    for name in (DNS_SLO, API_SLO):
        say(f"waiting for {name} to stop paging")
        _until(
            lambda n=name: it.status(n) not in ("page", "no_data"),  # type: ignore[misc]
            150,
            f"{name} stops paging once the storm is over",
        )
    if not it.synced():
        raise CascadeError(f"{DNS_SLO} recovered but CoreDNS is not synced")
    say("replaying the lab's SLOs over Prometheus' series since the storm")
    api, dns = _pages(it, storm)
    return Cascade(
        directory, storm, restarts, restarted, stop, time.time(), synced_at_stop, api, dns
    )


def _restart(directory: Path, say: Callable[[str], None]) -> tuple[Restart, ...]:
    """A crash-looping CoreDNS: restarts until one does not sync through the storm."""
    restarts: list[Restart] = []
    for number in range(1, RESTARTS + 1):
        say(f"$ lab dns restart-coredns   # restart {number}: stops CoreDNS, waits for answers")
        at = time.time()
        said = _lab(directory, "dns", "restart-coredns")
        restarts.append(Restart(at, "NOT synced" not in said, said))
        if not restarts[-1].synced:
            say("CoreDNS did NOT sync: SERVFAIL for every Service name until it does")
            break
        say("CoreDNS synced through the storm (a retry found room in the flow's queues)")
    return tuple(restarts)


def _pages(it: _Lab, storm: float) -> tuple[list[Episode], list[Episode]]:
    """The page episodes of each SLO in guardian's replay, retried until Prometheus' steps
    reach the recoveries the live evaluation saw."""
    pages: list[Episode] = []

    def replayed() -> bool:
        found = replay(it.config.slos, it.client, _at(storm - 30), _at(time.time()), STEP)
        if found.error:
            raise CascadeError(f"the replay failed: {found.error}")
        pages[:] = [e for e in episodes(found.steps) if e.severity == "page"]
        return bool(pages) and all(e.end is not None for e in pages)

    _until(replayed, 30, "the replay's page episodes end")
    return [e for e in pages if e.slo == API_SLO], [e for e in pages if e.slo == DNS_SLO]


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def timeline(c: Cascade) -> str:
    """The events in seconds from the storm's start, in order (a missing one last, "never")."""
    unsynced = "CoreDNS synced" if c.synced_at_stop else "CoreDNS still unsynced"
    events: list[tuple[datetime | float | None, str]] = [
        (c.storm, f"storm: lab load {' '.join(STORM)}"),
        (_start(c.api), f"API-server SLO page: {API_SLO} (429 ratio)"),
        *[
            (r.at, f"CoreDNS restart {n}: {'synced' if r.synced else 'NOT synced, SERVFAIL'}")
            for n, r in enumerate(c.restarts, 1)
        ],
        (_start(c.dns), f"DNS SLO page: {DNS_SLO} (SERVFAIL ratio)"),
        (c.stop, f"storm stopped: lab load --stop ({unsynced})"),
        (_end(c.api), f"API-server recovered: {API_SLO} stops paging"),
        (_end(c.dns), f"DNS recovered: {DNS_SLO} stops paging"),
    ]
    rows = [(_seconds(moment, c.storm), what) for moment, what in events]
    rows.sort(key=lambda row: float("inf") if row[0] is None else row[0])
    lines = [f"  {'never' if at is None else f'{at:+5.0f}'}  {what}" for at, what in rows]
    head = (
        "timeline (seconds from the storm's start; pages and recoveries from guardian's "
        f"replay of the lab's SLOs over Prometheus, {STEP} s steps)"
    )
    return "\n".join([head, *lines])


def _start(found: list[Episode]) -> datetime | None:
    return found[0].start if found else None


def _end(found: list[Episode]) -> datetime | None:
    return found[-1].end if found else None


def _seconds(moment: datetime | float | None, origin: float) -> float | None:
    if moment is None:
        return None
    return (moment.timestamp() if isinstance(moment, datetime) else moment) - origin


def closing(c: Cascade) -> str:
    """What guardian does instead (act 2), beside when DNS paged and recovered here."""
    paged, recovered = _seconds(_start(c.dns), c.storm), _seconds(_end(c.dns), c.storm)
    here = (
        f"DNS paged {paged:.0f}s into the storm and recovered {recovered:.0f}s after its start"
        if paged is not None and recovered is not None
        else "DNS did not page and recover"
    )
    return (
        f"Without guardian: {here}; the act stopped the storm once DNS paged, where on "
        "2024-12-11 responders took hours (deployed 15:12, first cluster recovering 16:36). "
        "With guardian (act 2) the change guard halts the DaemonSet by itself within 3 "
        "minutes of the fault (its goal): the storm, and with it the time in which a CoreDNS "
        "that must sync again answers SERVFAIL, lasts minutes, not hours."
    )


def main() -> int:
    """Run act 3 on a lab of its own; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=NODES, help=f"KWOK nodes ({NODES})")
    args = parser.parse_args()
    began = time.monotonic()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # beside lab's stderr
    signal.signal(signal.SIGTERM, _terminated)
    print(f"\n=== act 3: without guardian, the DNS cascade ({args.nodes} KWOK nodes) ===")
    with tempfile.TemporaryDirectory(prefix="guardian-cascade-") as tmp:
        directory = Path(tmp) / "lab"
        env = {**os.environ, "GUARDIAN_LAB_DIR": str(directory)}
        try:
            print(f"$ lab up --nodes {args.nodes}")
            up = subprocess.run([str(LAB), "up", "--nodes", str(args.nodes)], env=env, check=False)
            if up.returncode != 0:
                raise CascadeError("lab up failed (see above)")
            found = run(directory)
            print(f"\n{timeline(found)}\n\n{closing(found)}")
        except CascadeError as error:
            print(f"act 3: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("act 3: interrupted", file=sys.stderr)
            return 130
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # cleaning up: a second Ctrl-C waits
            _down(env)
    print(f"act 3 finished in {time.monotonic() - began:.0f}s; the lab is stopped.")
    return 0


def _down(env: dict[str, str]) -> None:
    """Stop the storm and the lab, whatever state they are in."""
    print("$ lab down   # stops every process of the lab")
    subprocess.run([str(LAB), "load", "--stop"], env=env, capture_output=True, check=False)
    down = subprocess.run([str(LAB), "down"], env=env, capture_output=True, text=True, check=False)
    if down.returncode != 0:
        print(f"act 3: lab down failed: {down.stderr.strip()[-2000:]}", file=sys.stderr)


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
