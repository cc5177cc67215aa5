"""The DNS cascade on the lab, read from Prometheus: storm → API-server SLO pages → a CoreDNS
restarted during the storm cannot sync and answers SERVFAIL → the DNS SLO pages later → the
storm stops → CoreDNS syncs and both SLOs recover.

One scenario on a lab of its own (module-scoped: the storm and the shared APF flow must not
reach other modules' lab); its timeline is guardian's own replay of the lab's SLOs
(``guardian.yaml``: ``apiserver-rejections``, the 429 ratio, and ``dns-errors``, the SERVFAIL
ratio of ``coredns_dns_responses_total`` as in ``config/slos.yaml``) over Prometheus' series,
not the times the test acted at. The clients are ``lab dns start``'s (node-local caches, TTL
10 s); CoreDNS shares the storm's APF flow (``--shared-flow``): in a flow of its own, fair
queuing serves it beside the storm and it syncs at once (see ``lab/dns.py``). Even in the
storm's flow a retry of CoreDNS sometimes finds room in its queues: a restart whose first
sync got through is followed by another, up to five, as a crash-looping CoreDNS does.

The sequence and the timeline are act 3 of ``make demo``'s (``run`` and ``timeline`` of
``examples/incident-2024-12-11/cascade.py``, loaded by path): the demo and this test run one
implementation, and the last test checks the timeline the demo prints.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests

from tests.lab_fixture import ROOT, running_lab

pytestmark = [pytest.mark.lab, pytest.mark.slow]

FLOW_SCHEMA = "lab-storm-and-coredns"


def _example(name: str) -> ModuleType:
    """``examples/incident-2024-12-11/<name>.py``, loaded by path (examples are no package)."""
    path = ROOT / "examples" / "incident-2024-12-11" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"incident_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


act = _example("cascade")
Cascade = act.Cascade
STEP: int = act.STEP


@pytest.fixture(scope="module")
def cascade(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with running_lab(tmp_path_factory.mktemp("dns-lab"), act.NODES) as lab:
        found = act.run(lab.directory, lambda line: print(line, file=sys.stderr))
        print(act.timeline(found), file=sys.stderr)
        yield found


def _timeline(c: Cascade) -> str:
    return str(act.timeline(c))


def _range(directory: Path, query: str, start: float, end: float) -> list[dict[str, Any]]:
    port = json.loads((directory / "state.json").read_text())["ports"]["prometheus"]
    answer = requests.get(
        f"http://127.0.0.1:{port}/api/v1/query_range",
        params={"query": query, "start": str(start), "end": str(end), "step": "1"},
        timeout=10,
    )
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def test_the_api_server_slo_pages_after_the_storm_starts(cascade: Cascade) -> None:
    assert cascade.api, _timeline(cascade)
    first = cascade.api[0].start.timestamp()
    # the replay's steps and the live evaluation that timed the restart differ by up to a step
    assert cascade.storm - STEP <= first <= cascade.restart + 2 * STEP, _timeline(cascade)


def test_coredns_serves_through_the_storm_until_it_must_sync_again(cascade: Cascade) -> None:
    """Before the restart the storm sheds in CoreDNS's own flow, yet not one SERVFAIL: a
    synced CoreDNS answers from its informers' store whatever the API server says."""
    lab, before = cascade.directory, cascade.restart
    rejected = f'sum(apiserver_flowcontrol_rejected_requests_total{{flow_schema="{FLOW_SCHEMA}"}})'
    shed = [float(v) for s in _range(lab, rejected, cascade.storm, before) for _, v in s["values"]]
    assert shed and max(shed) > 100, shed  # the counter appeared with the storm's first 429
    servfail = 'sum(coredns_dns_responses_total{job="coredns",rcode="SERVFAIL"})'
    assert _range(lab, servfail, cascade.storm, before) == []
    assert _range(lab, servfail, cascade.restarted, cascade.end), "no SERVFAIL after the restart"
    assert "NOT synced" in cascade.restart_said, cascade.restart_said


def test_the_dns_slo_pages_after_the_api_server_slo(cascade: Cascade) -> None:
    assert cascade.api and cascade.dns, _timeline(cascade)
    dns = cascade.dns[0].start.timestamp()
    assert dns > cascade.api[0].start.timestamp(), _timeline(cascade)
    assert dns >= cascade.restart, _timeline(cascade)


def test_both_recover_once_the_storm_stops(cascade: Cascade) -> None:
    """The API-server SLO pages until the storm stops; the DNS SLO stops paging once CoreDNS
    has synced: after the storm when it was still unsynced then (it may get a request through
    the storm's queues earlier: see ``lab/dns.py``)."""
    assert cascade.api and cascade.dns, _timeline(cascade)
    for found in (cascade.api, cascade.dns):
        assert all(e.end is not None for e in found), _timeline(cascade)
    assert cascade.api[-1].end and cascade.api[-1].end.timestamp() > cascade.stop
    last = cascade.dns[-1].end
    assert last and (cascade.synced_at_stop or last.timestamp() > cascade.stop), _timeline(cascade)


def test_the_timeline_names_every_event_at_its_measured_second(cascade: Cascade) -> None:
    """The timeline act 3 prints: every event once (a line per restart), none "never", each
    page and recovery at the second of the replay's episode, in the order of time."""
    text = _timeline(cascade)
    rows = re.findall(r"^  +([+-]\d+|never)  ([^:]+): ", text, re.M)
    names = [name for _, name in rows]
    restarts = [f"CoreDNS restart {n}" for n in range(1, len(cascade.restarts) + 1)]
    expected = [e for e in act.EVENTS if e != "CoreDNS restart"] + restarts
    assert sorted(names) == sorted(expected), text
    assert "never" not in [at for at, _ in rows], text
    at = {name: int(seconds) for seconds, name in rows}
    assert list(at.values()) == sorted(at.values()), text

    def rel(moment: float) -> int:
        return int(f"{moment - cascade.storm:+.0f}")

    assert at["API-server SLO page"] == rel(cascade.api[0].start.timestamp()), text
    assert at["DNS SLO page"] == rel(cascade.dns[0].start.timestamp()), text
    assert at["API-server recovered"] == rel(cascade.api[-1].end.timestamp()), text
    assert at["DNS recovered"] == rel(cascade.dns[-1].end.timestamp()), text
    assert at["storm stopped"] == rel(cascade.stop), text
    last = f"CoreDNS restart {len(cascade.restarts)}"
    assert text.count("NOT synced") == 1 and "NOT synced" in text.split(last)[1], text
    closing = act.closing(cascade)
    assert f"DNS paged {at['DNS SLO page']}s into the storm" in closing, closing
