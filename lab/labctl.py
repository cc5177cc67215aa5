"""guardian's lab: etcd, kube-apiserver, controller-manager, scheduler, KWOK nodes, CoreDNS and
Prometheus on 127.0.0.1, every one a real binary built from Go modules by ``lab/build.sh``.

Commands: ``up [--nodes N]``, ``down``, ``status``, ``env``, ``load``, ``fault``,
``dns start|stop|restart-coredns``, each with ``--name NAME`` (default ``lab``) so that labs
run side by side, and ``fleet up|down|status|env`` (no ``--name``: it reads ``--names``)
(``fleet``: Thanos Query over the named labs' Prometheus). State (PIDs, ports, kubeconfig, logs)
lives in ``$GUARDIAN_LAB_DIR`` (default ``~/.cache/guardian/lab/run``) for the default lab, in
``$GUARDIAN_LAB_DIR/labs/NAME`` for lab NAME (``state``). Run by ``lab/lab``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence

import components
import dns as dns_mod
import fleet
import load as load_mod
from pki import make_pki
from state import DEFAULT_NAME, LabError, LabState, alive, build, lab_dir, rss_kib

__all__ = ["LabError", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lab/lab``."""
    parser = argparse.ArgumentParser(prog="lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="build (or reuse) the binaries and start the lab")
    up.add_argument("--nodes", type=int, default=50, help="KWOK nodes (default 50)")
    up.add_argument(
        "--max-requests-inflight",
        type=int,
        default=10,
        help="kube-apiserver read concurrency limit (default 10, so that `lab load` overloads "
        "it on 2 cores; raise it to take more load)",
    )
    up.add_argument("--max-mutating-requests-inflight", type=int, default=5)
    sub.add_parser("down", help="stop everything the lab started")
    sub.add_parser("status", help="show each component and whether it answers")
    sub.add_parser("env", help="print export KUBECONFIG=... PROMETHEUS_URL=...")
    load_mod.add_parser(sub)
    dns_mod.add_parser(sub)
    fault = sub.add_parser("fault", help="kill, pause, resume or restart a component")
    fault.add_argument("component", choices=components.FAULTABLE)
    fault.add_argument("action", choices=("kill", "stop", "cont", "start"))
    for each in sub.choices.values():
        each.add_argument(
            "--name",
            default=DEFAULT_NAME,
            help=f"which lab (default {DEFAULT_NAME!r}; another name is a lab of its own, with "
            "its own directory, ports and Prometheus labelled cluster=NAME)",
        )
    fleet.add_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(COMMANDS[args.command](args))
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return exc.code


def cmd_up(args: argparse.Namespace) -> int:
    directory = lab_dir(args.name)
    current = LabState.load(directory)
    if current is not None and any(alive(pid) for pid in current.pids.values()):
        raise LabError(
            f"the lab {args.name!r} is already up in {directory}; "
            f"run 'lab down{_flag(args)}' first",
            2,
        )
    started = time.monotonic()
    bin_dir = build()
    for stale in ("etcd-data", "prometheus-data", "logs", "state.json"):
        target = directory / stale
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    state = LabState(directory=directory, bin=str(bin_dir), nodes=args.nodes, name=args.name)
    state.save()
    pki = make_pki(directory / "pki")
    with components.stopped_on_failure(state):
        components.start_all(state, pki, args)
    print(f"lab up in {time.monotonic() - started:.1f}s: {args.nodes} nodes ready", file=sys.stderr)
    print(_env(state))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    state = LabState.load(lab_dir(args.name))
    if state is None:
        print("lab: nothing to stop", file=sys.stderr)
        return 0
    stopped = components.stop_all(state)
    print(f"lab down: stopped {', '.join(stopped) or 'nothing'}", file=sys.stderr)
    if fleet.reads(args.name):
        print(
            f"lab down: the fleet still has a sidecar on {args.name!r}; run 'lab fleet down'",
            file=sys.stderr,
        )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state = _running(args)
    healthy = True
    total = 0
    for name, pid in state.pids.items():
        ok = alive(pid) and (name not in components.ORDER or components.answers(state, name))
        healthy &= ok
        total += (rss := rss_kib(pid))
        print(f"{name:<28} pid {pid:<8} {'ready' if ok else 'NOT READY':<10} {rss / 1024:8.1f} MiB")
    print(f"{'total (RSS)':<52} {total / 1024:8.1f} MiB")
    return 0 if healthy else 1


def cmd_env(args: argparse.Namespace) -> int:
    print(_env(_running(args)))
    return 0


def cmd_fault(args: argparse.Namespace) -> int:
    state = _running(args)
    name = args.component
    pid = state.pids.get(name)
    actions: dict[str, Callable[[], None]] = {
        "kill": lambda: _signal(pid, signal.SIGKILL),
        "stop": lambda: _signal(pid, signal.SIGSTOP),
        "cont": lambda: _signal(pid, signal.SIGCONT),
        "start": lambda: components.restart(state, name),
    }
    try:
        actions[args.action]()
    except components.NotReady as exc:
        logs = state.directory / "logs"
        raise LabError(f"{exc} (the new process keeps running; logs in {logs})") from None
    print(f"lab fault: {name} {args.action}", file=sys.stderr)
    return 0


def _signal(pid: int | None, sig: signal.Signals) -> None:
    if pid is None or not alive(pid):
        raise LabError("that component is not running", 1)
    os.kill(pid, sig)


def _running(args: argparse.Namespace) -> LabState:
    state = LabState.load(lab_dir(args.name))
    if state is None:
        raise LabError(f"the lab {args.name!r} is not up; run 'lab up{_flag(args)}'", 2)
    return state


def _flag(args: argparse.Namespace) -> str:
    """`` --name NAME`` for a named lab, nothing for the default one."""
    return "" if args.name == DEFAULT_NAME else f" --name {args.name}"


def _env(state: LabState) -> str:
    return (
        f"export KUBECONFIG={state.directory / 'kubeconfig'} "
        f"PROMETHEUS_URL=http://127.0.0.1:{state.ports['prometheus']} "
        f"GUARDIAN_CONFIG={state.directory / 'guardian.yaml'}"
    )


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "up": cmd_up,
    "down": cmd_down,
    "status": cmd_status,
    "env": cmd_env,
    "fault": cmd_fault,
    "load": lambda args: load_mod.command(args, _running(args)),
    "dns": lambda args: dns_mod.command(args, _running(args)),
    "fleet": fleet.command,
}


if __name__ == "__main__":
    sys.exit(main())
