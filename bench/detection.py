"""Benchmark: how soon the change guard flags the 2024-12-11 incident, against the workbook pair.

bundled incident data → ``bench/results/detection-<UTC>.json``, ``detection-latest.json`` and
a table on stdout; run by ``make bench`` (or ``.venv/bin/python bench/detection.py``).

1. The incident's TSDB blocks come from ``examples/incident-2024-12-11/demo.py``'s own
   ``_blocks`` (``generate.py``'s metrics of 2024-12-09 .. 12-11 PST backfilled with promtool,
   cached under ``~/.cache/guardian/incident-2024-12-11/<key>/``, the key a hash of
   ``generate.py``): the same cache ``make demo`` fills and reads;
2. Prometheus (``guardian.testing.prometheus.PrometheusServer``) starts on a copy of them, and
   demo.py's ``_config`` writes the example's ``guardian.yaml`` and ``change-guard.yaml``
   against it;
3. ``guardian backtest --step 1m -o json`` runs twice: over the incident day (12:00-22:00 PST,
   demo.py's window) and over the two normal days before it (12-09 00:00 to 12-11 00:00 PST).

Reported, in minutes after 15:12 PST (the telemetry DaemonSet's creation):

* per SLO: the change guard's first ``halt-change`` proposal (``decisions`` of kind
  ``propose``, playbook ``halt-change``) and the first workbook page (``episodes`` of
  severity ``page``, the SRE Workbook's 1h/5m and 6h/30m pairs), and their ratio
  change guard / workbook;
* per cluster: the first halt-change whose blamed change is in that cluster (any SLO) against
  the first page of an SLO labelled with that cluster;
* overall: the first halt-change of any SLO against the first page of any SLO;
* the normal days: halt-change proposals, all proposals, pages and tickets (target 0 each),
  beside the ordinary rollouts ``generate.py`` puts in them (template updates of its steady
  workloads, seen in kube-state-metrics like the telemetry DaemonSet).

Every Prometheus started is stopped, also on errors. Nothing is asserted; about 75 s on 2
cores once the data is cached (generating and backfilling it adds about 45 s, once).
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]  # run as a script, bench/requests.py would hide the ``requests`` library

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

from guardian.config import load_config
from guardian.testing.prometheus import PrometheusServer, binary

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
EXAMPLE = ROOT / "examples" / "incident-2024-12-11"


def _example(name: str) -> ModuleType:
    """``examples/incident-2024-12-11/<name>.py`` as a module (the examples are no package)."""
    spec = importlib.util.spec_from_file_location(f"incident_{name}", EXAMPLE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # generate.py's dataclasses look their module up
    spec.loader.exec_module(module)
    return module


demo = _example("demo")
DEPLOYED = demo.DAY.replace(hour=15, minute=12)
NORMAL_FROM = demo.DAY - timedelta(days=2)
NORMAL_TO = demo.DAY


def backtest(config: Path, start: datetime, end: datetime) -> tuple[dict[str, Any], float]:
    """``guardian backtest -c config --from start --to end --step 1m -o json``; the document
    and the seconds it took."""
    cmd = [str(Path(sys.executable).parent / "guardian"), "backtest", "-c", str(config)]
    cmd += ["--from", start.isoformat(), "--to", end.isoformat(), "--step", "1m", "-o", "json"]
    print(f"backtest {start.isoformat()} .. {end.isoformat()} (1m steps) ...", flush=True)
    began = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - began
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"guardian backtest exited {done.returncode}")
    print(f"  done in {elapsed:.0f}s", flush=True)
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc, elapsed


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _minutes(moment: datetime | None) -> float | None:
    return None if moment is None else round((moment - DEPLOYED).total_seconds() / 60, 1)


def _ratio(guard: float | None, workbook: float | None) -> float | None:
    if guard is None or workbook is None or workbook <= 0:
        return None
    return round(guard / workbook, 3)


def _halts(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        d for d in doc["decisions"] if d["kind"] == "propose" and d["playbook"] == "halt-change"
    ]


def _pages(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in doc["episodes"] if e["severity"] == "page"]


def _row(halt: dict[str, Any] | None, page: dict[str, Any] | None) -> dict[str, Any]:
    """First halt-change against first page: times (PST), minutes after 15:12, ratio."""
    halt_at = _at(halt["at"]) if halt else None
    page_at = _at(page["start"]) if page else None
    guard, workbook = _minutes(halt_at), _minutes(page_at)
    change = halt["change"] if halt else None
    return {
        "halt_change_at": halt_at.astimezone(demo.PST).isoformat() if halt_at else None,
        "halt_change_minutes": guard,
        "halt_change_blames": None
        if change is None
        else f"{change['kind']} {change['namespace']}/{change['name']} in {change['cluster']}",
        "halt_change_cluster": None if change is None else change["cluster"],
        "page_at": page_at.astimezone(demo.PST).isoformat() if page_at else None,
        "page_minutes": workbook,
        "page_pair": f"{page['long']}/{page['short']}" if page else None,
        "ratio_change_guard_vs_workbook": _ratio(guard, workbook),
    }


def _first(entries: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    return min(entries, key=lambda e: _at(e[key]), default=None)


def per_slo(doc: dict[str, Any], slos: list[tuple[str, str | None, bool]]) -> list[dict[str, Any]]:
    """One row per SLO of ``(name, cluster label, watched by the change guard)``."""
    halts, pages = _halts(doc), _pages(doc)
    rows = []
    for name, cluster, guarded in slos:
        halt = _first([d for d in halts if d["slo"] == name], "at")
        page = _first([e for e in pages if e["slo"] == name], "start")
        rows.append({"slo": name, "cluster": cluster, "guarded": guarded, **_row(halt, page)})
    return rows


def per_cluster(
    doc: dict[str, Any], slos: list[tuple[str, str | None, bool]]
) -> list[dict[str, Any]]:
    """First halt-change blaming a change in the cluster (any SLO) against the first page of
    an SLO carrying ``cluster: <cluster>``; fleet-wide SLOs' pages belong to no cluster."""
    halts, pages = _halts(doc), _pages(doc)
    rows = []
    for cluster in sorted({c for _, c, _ in slos if c}):
        mine = {name for name, c, _ in slos if c == cluster}
        halt = _first([d for d in halts if (d["change"] or {}).get("cluster") == cluster], "at")
        page = _first([e for e in pages if e["slo"] in mine], "start")
        rows.append({"cluster": cluster, "slos": sorted(mine), **_row(halt, page)})
    return rows


def overall(doc: dict[str, Any]) -> dict[str, Any]:
    """The first halt-change of any SLO against the first page of any SLO."""
    return _row(_first(_halts(doc), "at"), _first(_pages(doc), "start"))


def ordinary_rollouts() -> dict[str, int]:
    """Per cluster, the ordinary rollouts ``generate.py`` puts in the normal days (template
    updates of its steady workloads), from its own ``ksm_rollouts`` with its defaults."""
    generate = _example("generate")
    args = generate.parse_args(["--out", os.devnull])
    timeline = generate.build_timeline(args.days_before, args.interval)
    plan = generate.ksm_rollouts(timeline, args.seed)
    begin, end = NORMAL_FROM.timestamp(), NORMAL_TO.timestamp()
    return {c: sum(begin <= r.start < end for r in rollouts) for c, rollouts in plan.items()}


def normal_days(doc: dict[str, Any]) -> dict[str, Any]:
    """What fired on the days before the incident; every count's target is 0."""
    proposals = [d for d in doc["decisions"] if d["kind"] == "propose"]
    return {
        "from": NORMAL_FROM.isoformat(),
        "to": NORMAL_TO.isoformat(),
        "ordinary_rollouts": ordinary_rollouts(),
        "halt_change_proposals": len(_halts(doc)),
        "proposals": len(proposals),
        "notifications": len(doc["decisions"]) - len(proposals),
        "pages": len(_pages(doc)),
        "tickets": len([e for e in doc["episodes"] if e["severity"] == "ticket"]),
        "halt_change_slos": sorted({d["slo"] for d in _halts(doc)}),
        "page_slos": sorted({e["slo"] for e in _pages(doc)}),
    }


def run(cache: Path) -> dict[str, Any]:
    """The whole benchmark; returns the report."""
    began = time.monotonic()
    blocks = demo._blocks(cache)
    with tempfile.TemporaryDirectory(prefix="guardian-detection-") as tmp:
        tsdb = Path(tmp) / "tsdb"
        print(f"copying the TSDB blocks to {tsdb} ...", flush=True)
        shutil.copytree(blocks, tsdb)
        print("starting Prometheus on the copy ...", flush=True)
        with PrometheusServer(tsdb) as prometheus:
            print(f"prometheus: {prometheus.url}", flush=True)
            config = demo._config(Path(tmp) / "config", prometheus.url)
            loaded = load_config(config)
            incident, incident_s = backtest(config, demo.FROM, demo.TO)
            normal, normal_s = backtest(config, NORMAL_FROM, NORMAL_TO)
    guard = loaded.change_guard
    slos = [
        (s.name, dict(s.labels).get("cluster"), guard is not None and guard.selects(s))
        for s in loaded.slos
    ]
    return {
        "benchmark": "detection",
        "at": datetime.now(UTC).isoformat(),
        "data": {"blocks": str(blocks), "key": blocks.parent.name},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "prometheus": _prometheus_version(),
        },
        "reference": DEPLOYED.isoformat(),
        "incident_window": {"from": demo.FROM.isoformat(), "to": demo.TO.isoformat()},
        "per_slo": per_slo(incident, slos),
        "per_cluster": per_cluster(incident, slos),
        "overall": overall(incident),
        "normal_days": normal_days(normal),
        "backtest_seconds": {"incident": round(incident_s, 1), "normal_days": round(normal_s, 1)},
        "queries": {"incident": incident["queries"], "normal_days": normal["queries"]},
        "seconds": round(time.monotonic() - began, 1),
    }


def _prometheus_version() -> str:
    cmd = [binary("prometheus"), "--version"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def save(report: dict[str, Any]) -> Path:
    """Write the timestamped and the latest JSON; returns the timestamped path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(report, indent=2) + "\n"
    path = RESULTS / f"detection-{stamp}.json"
    path.write_text(text, encoding="utf-8")
    (RESULTS / "detection-latest.json").write_text(text, encoding="utf-8")
    return path


def _cell(value: object) -> str:
    return "—" if value is None else str(value)


def _hhmm(text: str | None) -> str:
    return "—" if text is None else datetime.fromisoformat(text).strftime("%H:%M")


def print_table(report: dict[str, Any]) -> None:
    """The per-SLO and per-cluster rows and the normal days, as plain text."""
    print(f"\nminutes after {DEPLOYED:%H:%M} PST (telemetry DaemonSet created)")
    head = (
        f"{'':<22} {'halt-change':>17} {'blamed change in':>17} {'workbook page':>20} "
        f"{'guard/workbook':>15}"
    )
    print(head)
    print("-" * len(head))
    rows = [(r["slo"] + ("" if r["guarded"] else " *"), r) for r in report["per_slo"]]
    rows += [(f"cluster {r['cluster']}", r) for r in report["per_cluster"]]
    rows.append(("first of any SLO", report["overall"]))
    for label, r in rows:
        halt = f"{_hhmm(r['halt_change_at'])} {_cell(r['halt_change_minutes']):>6}"
        page = f"{_hhmm(r['page_at'])} {_cell(r['page_minutes']):>6} {_cell(r['page_pair']):>6}"
        ratio = _cell(r["ratio_change_guard_vs_workbook"])
        blamed = _cell(r["halt_change_cluster"])
        print(f"{label:<22} {halt:>17} {blamed:>17} {page:>20} {ratio:>15}")
    print("* not watched by the change guard")
    n = report["normal_days"]
    print(
        f"\nnormal days {n['from'][:10]} .. {n['to'][:10]}: {n['halt_change_proposals']} "
        f"halt-change proposals, {n['proposals']} proposals, {n['pages']} pages, "
        f"{n['tickets']} tickets (target 0), over {sum(n['ordinary_rollouts'].values())} "
        "ordinary rollouts"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="~/.cache/guardian", help="cache directory (demo's)")
    args = parser.parse_args()
    report = run(Path(args.cache).expanduser())
    path = save(report)
    print_table(report)
    print(f"\nresults: {path.relative_to(ROOT)} ({report['seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
