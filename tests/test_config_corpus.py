"""Malformed config and playbook files: each gets its exact one line from ``guardian check``
and exit 2, fast, whatever it holds (alias bombs, 50 MB, FIFOs, /dev/zero, deep nesting,
bytes that are not UTF-8, duplicate keys, non-finite numbers, huge durations, passwords)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import BaseModel

from guardian.app.cli import main
from guardian.errors import ConfigErrors
from guardian.playbooks import load_playbooks
from tests.lab_fixture import ROOT

HEAD = "version: guardian/v1\nprometheus: {url: 'http://127.0.0.1:9090'}\n"
SLO = "slos:\n  - name: api-read\n    sli: {coredns_errors: {}}\n    objective: 99\n"
GOOD = HEAD + SLO
BOOK = """\
version: guardian/v1
name: pause-it
trigger: {slos: [api-read]}
steps:
  - name: pause
    action: pause-rollout
    params: {kind: Deployment, namespace: x, name: y}
"""


def _bomb(indent: str, levels: int = 9) -> str:
    """A "billion laughs": 9 aliases of 9 aliases ... of 9 strings (9**10 once expanded)."""
    lines = [f"{indent}- &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels + 1):
        lines.append(f"{indent}- &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _nested(levels: int) -> str:
    return "[" * levels + "]" * levels


Case = Callable[[Path], tuple[Path, str]]
"""Lays out files under a directory; returns what to give -c and the expected line."""


def _file(text: str | bytes, name: str = "guardian.yaml") -> Case:
    def build(tmp: Path) -> tuple[Path, str]:
        path = tmp / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path, f"{path}: "

    return build


def _in_dir(make: Callable[[Path], None], name: str) -> Case:
    """A good config file and, beside it, ``name`` made by ``make``."""

    def build(tmp: Path) -> tuple[Path, str]:
        (tmp / "a.yaml").write_text(GOOD)
        make(tmp / name)
        return tmp, f"{tmp / name}: "

    return build


def _with_book(book: str) -> Case:
    def build(tmp: Path) -> tuple[Path, str]:
        (tmp / "guardian.yaml").write_text(GOOD + "policy: {playbooks: [book.yaml]}\n")
        (tmp / "book.yaml").write_text(book)
        return tmp / "guardian.yaml", f"{tmp / 'book.yaml'}: "

    return build


def _pair(factor: str) -> str:
    return (
        GOOD
        + "window_sets:\n  f: [{severity: page, long: 1h, short: 5m, factor: "
        + factor
        + "}]\n"
    )


def _slo_on(factor: str, objective: str = "99") -> str:
    """An SLO of ``objective`` on a one-pair window set whose page factor is ``factor``."""
    pairs = "window_sets:\n  f: [{severity: page, long: 1h, short: 5m, factor: " + factor + "}]\n"
    slo = SLO.replace("objective: 99", f"objective: {objective}") + "    windows: f\n"
    return HEAD + pairs + slo


def _headers(headers: str) -> str:
    return HEAD.replace("9090'}", f"9090', headers: {headers}}}") + SLO


def _store(url: str) -> str:
    return GOOD + f"policy: {{store: {{url: '{url}'}}}}\n"


def _sparse(path: Path, size: int) -> tuple[Path, str]:
    with path.open("wb") as stream:
        stream.write(GOOD.encode())
        stream.truncate(size)
    return path, f"{path}: "


def _fifo_book(tmp: Path) -> tuple[Path, str]:
    (tmp / "guardian.yaml").write_text(GOOD + "policy: {playbooks: [books]}\n")
    (tmp / "books").mkdir()
    os.mkfifo(tmp / "books" / "book.yaml")
    return tmp / "guardian.yaml", f"{tmp / 'books' / 'book.yaml'}: "


PASSWORD = "policy: store: url: holds a password; put the URL in an environment variable and name "
PASSWORD += "it in url_env"

CASES: list[tuple[str, Case, str]] = [
    (
        "an alias bomb under objective",
        _file(HEAD + SLO.replace("objective: 99\n", "objective:\n" + _bomb("      "))),
        "its aliases expand to more than 100000 values; write the values out or use fewer aliases",
    ),
    (
        "an alias bomb in a playbook's params",
        _with_book(
            BOOK.replace(
                "    params: {kind: Deployment, namespace: x, name: y}\n",
                "    params:\n      kind: Deployment\n      namespace: x\n      name:\n"
                + _bomb("        "),
            )
        ),
        "its aliases expand to more than 100000 values; write the values out or use fewer aliases",
    ),
    (
        "an alias inside the value it names",
        _file(HEAD + SLO.replace("objective: 99\n", "objective: &o [*o]\n")),
        "slos[0]: objective[0]: an alias refers to a value that holds it (line 6); write the "
        "value out",
    ),
    (
        "a value too big to print is cut in the message",
        _file(HEAD + SLO.replace("objective: 99\n", "objective:\n" + _bomb("      ", 4))),
        "slos[0] 'api-read': objective: must be a number (got [['lol', 'lol', 'lol', 'lol', "
        "...], [[...], [...], [...], [...], ...], [[...], …)",
    ),
    (
        "a 50 MB file",
        lambda tmp: _sparse(tmp / "big.yaml", 50 << 20),
        "too large (52428800 bytes); a config or playbook file holds at most 1 MiB",
    ),
    (
        "a FIFO named *.yaml",
        _in_dir(os.mkfifo, "fifo.yaml"),
        "not a regular file (a FIFO); give a YAML file",
    ),
    (
        "a symlink to /dev/zero",
        _in_dir(lambda p: p.symlink_to("/dev/zero"), "zero.yaml"),
        "not a regular file (a character device); give a YAML file",
    ),
    (
        "a directory named *.yaml",
        _in_dir(lambda p: p.mkdir(), "x.yaml"),
        "not a regular file (a directory); give a YAML file",
    ),
    (
        "a FIFO as a playbook",
        _fifo_book,
        "not a regular file (a FIFO); give a YAML file",
    ),
    (
        "20,000 levels of nesting",
        _file(HEAD + "x: " + _nested(20_000) + "\n"),
        "nested more than 64 levels deep; flatten it",
    ),
    (
        "65 levels of nesting",
        _file(HEAD + "x: " + _nested(64) + "\n"),
        "nested more than 64 levels deep; flatten it",
    ),
    (
        "aliases that nest deeper than 64 levels",
        _file(
            HEAD + "x:\n  - &a0 [x]\n" + "".join(f"  - &a{i} [*a{i - 1}]\n" for i in range(1, 70))
        ),
        "nested more than 64 levels deep; flatten it",
    ),
    (
        "a selector followed by half a million spaces",
        _file(
            GOOD.replace(
                "{coredns_errors: {}}",
                '{coredns_errors: {selector: \'a="b"' + " " * 500_000 + "x'}}",
            )
        ),
        "slos[0] 'api-read': sli: coredns_errors: selector: must be label matchers like "
        'cluster="prod", job="apiserver" (got \'a="b"' + " " * 70 + "'…)",
    ),
    (
        "a template holding half a million spaces",
        _with_book(BOOK.replace("name: y}", 'name: "{{ nope' + " " * 500_000 + 'x }}"}')),
        "steps[0] 'pause': params: {{ nope" + " " * 192 + "…",
    ),
    (
        "latin-1 bytes",
        _file(GOOD.encode() + b"# caf\xe9\n"),
        "not UTF-8 text (byte 0xe9 on line 7); save it as UTF-8",
    ),
    (
        "UTF-16 with a byte order mark",
        _file(GOOD.encode("utf-16")),
        "not UTF-8 text (UTF-16, by its byte order mark); save it as UTF-8",
    ),
    (
        "a key given twice at the top",
        _file(GOOD + "prometheus: {url: 'http://127.0.0.1:9091'}\n"),
        "key 'prometheus' given twice (lines 2 and 7); keep one",
    ),
    (
        "a key given twice in an SLO",
        _file(GOOD + "    objective: 99.9\n"),
        "slos[0]: key 'objective' given twice (lines 6 and 7); keep one",
    ),
    (
        "a key given twice in a playbook step",
        _with_book(BOOK + "    action: scale-apiserver\n"),
        "steps[0]: key 'action' given twice (lines 6 and 8); keep one",
    ),
    (
        "an integer of 5000 digits",
        _file(GOOD + "    min_events: " + "1" * 5000 + "\n"),
        "line 7: not valid YAML: '11111111111111111111111111111111111'… is not a value: "
        "more than 4300 digits",
    ),
    (
        "a factor of .nan",
        _file(_pair(".nan")),
        "window_sets: f[0]: factor: must be a finite number > 0 (got nan)",
    ),
    (
        "a factor of .inf",
        _file(_pair(".inf")),
        "window_sets: f[0]: factor: must be a finite number > 0 (got inf)",
    ),
    (
        "a factor of 1.0e+999 (inf once read)",
        _file(_pair("1.0e+999")),
        "window_sets: f[0]: factor: must be a finite number > 0 (got inf)",
    ),
    (
        "a factor of 1e999 (a string in YAML 1.1, no longer read as a number)",
        _file(_pair("1e999")),
        "window_sets: f[0]: factor: must be a number (got '1e999')",
    ),
    (
        "a factor of true",
        _file(_pair("true")),
        "window_sets: f[0]: factor: must be a number (got True)",
    ),
    (
        "a factor written as a string",
        _file(_pair("'14.4'")),
        "window_sets: f[0]: factor: must be a number (got '14.4')",
    ),
    (
        "a budget fraction of true",
        _file(_pair("2").replace("factor: 2", "budget_fraction: true")),
        "window_sets: f[0]: budget_fraction: must be a number (got True)",
    ),
    (
        "a factor above the highest burn rate the objective allows",
        _file(_slo_on("200")),
        "slos[0] 'api-read': windows: page 1h/5m: factor 200 can never page: with objective 99 "
        "the burn rate is at most 100; lower it",
    ),
    (
        "a factor of 1.0e+308",
        _file(_slo_on("1.0e+308")),
        "slos[0] 'api-read': windows: page 1h/5m: factor 1e+308 can never page: with objective "
        "99 the burn rate is at most 100; lower it",
    ),
    (
        "a factor equal to the highest burn rate (a pair fires above its factor)",
        _file(_slo_on("100")),
        "slos[0] 'api-read': windows: page 1h/5m: factor 100 can never page: with objective 99 "
        "the burn rate is at most 100; lower it",
    ),
    (
        "a budget fraction whose factor is too high",
        _file(_slo_on("2").replace("factor: 2", "budget_fraction: 1")),
        "slos[0] 'api-read': windows: page 1h/5m: factor 720 can never page: with objective 99 "
        "the burn rate is at most 100; lower its budget_fraction",
    ),
    (
        "the built-in windows with an objective of 90",
        _file(GOOD.replace("objective: 99", "objective: 90")),
        "slos[0] 'api-read': windows: page 1h/5m: factor 14.4 can never page: with objective 90 "
        "the burn rate is at most 10; raise the objective or use a window set with lower factors",
    ),
    (
        "a latency bucket of +Inf",
        _file(GOOD.replace("{coredns_errors: {}}", "{latency: {metric: x, le: .inf}}")),
        "slos[0] 'api-read': sli: latency: le: must be a bucket boundary like \"0.5\" (got inf)",
    ),
    (
        "an objective of .nan",
        _file(GOOD.replace("objective: 99", "objective: .nan")),
        "slos[0] 'api-read': objective: must be > 0 and < 100 (got nan)",
    ),
    (
        "a Prometheus timeout of 999999999999d",
        _file(HEAD.replace("9090'}", "9090', timeout: 999999999999d}") + SLO),
        "prometheus: timeout: must be at most 10m (got '999999999999d')",
    ),
    (
        "an approval timeout of 99999999999999d",
        _file(GOOD + "policy: {approval_timeout: 99999999999999d}\n"),
        "policy: approval_timeout: must be at most 7d (got '99999999999999d')",
    ),
    (
        "a period of 99999999999999999999999d",
        _file(GOOD + "    period: 99999999999999999999999d\n"),
        "slos[0] 'api-read': period: must be at most 365d (got '99999999999999999999999d')",
    ),
    (
        "a window longer than any duration",
        _file(_pair("2").replace("long: 1h", "long: 99999999999h")),
        "window_sets: f[0]: long: must be at most 3650d (got '99999999999h')",
    ),
    (
        "windows longer than the period",
        _file(GOOD + "    period: 1d\n"),
        "slos[0] 'api-read': windows: google-30d has a 3d window, longer than the period 1d; "
        "pick a shorter window set or a longer period",
    ),
    (
        "a step timeout of 400d",
        _with_book(BOOK + "    timeout: 400d\n"),
        "steps[0] 'pause': timeout: must be at most 1d (got '400d')",
    ),
    (
        "slack.listen on port 99999",
        _file(GOOD + "slack: {channel: C1, mode: http, listen: '127.0.0.1:99999'}\n"),
        "slack: listen: port: must be from 1 to 65535 (got 99999)",
    ),
    (
        "daemon.listen on port 0",
        _file(GOOD + "daemon: {listen: '127.0.0.1:0'}\n"),
        "daemon: listen: port: must be from 1 to 65535 (got 0)",
    ),
    (
        "a store password as user:pass@",
        _file(_store("postgresql+psycopg://guardian:s3cret@db/guardian")),
        PASSWORD,
    ),
    (
        "a store password as ?password=",
        _file(_store("postgresql+psycopg://guardian@db/guardian?password=s3cret")),
        PASSWORD,
    ),
    (
        "a store password holding /",
        _file(_store("postgresql+psycopg://guardian:s3/cret@db/guardian")),
        PASSWORD,
    ),
    (
        "a store password holding @",
        _file(_store("postgresql+psycopg://guardian:s3cr@t@db/guardian")),
        PASSWORD,
    ),
    (
        "a store password with no user",
        _file(_store("postgresql+psycopg://:s3cret@db/guardian")),
        PASSWORD,
    ),
    (
        "a store URL that does not parse is not echoed",
        _file(_store("postgresql+psycopg://guardian:s3cret@db:port/guardian")),
        "policy: store: url: must be a sqlite:/// or postgresql+psycopg:// URL",
    ),
    (
        "a password in the Prometheus URL",
        _file(HEAD.replace("http://", "http://admin:s3cret@") + SLO),
        "prometheus: url: holds a user or password; use basic_auth with a password_file instead",
    ),
    (
        "a token in the Prometheus headers",
        _file(HEAD.replace("9090'}", "9090', headers: {Authorization: Bearer s3cret}}") + SLO),
        "prometheus: headers: 'Authorization' holds a credential; use bearer_token_file, "
        "bearer_token_env or basic_auth instead",
    ),
    (
        "a credential header with a trailing space",
        _file(_headers("{'Authorization ': Bearer s3cret}")),
        "prometheus: headers: 'Authorization ': not a valid header name; use letters, digits "
        "and '-' only, like X-Scope-OrgID",
    ),
    (
        "a header name ending in a colon",
        _file(_headers("{'Cookie:': s3cret}")),
        "prometheus: headers: 'Cookie:': not a valid header name; use letters, digits and '-' "
        "only, like X-Scope-OrgID",
    ),
    (
        "a header name holding a line break",
        _file(_headers('{"X-A\\r\\nAuthorization": s3cret}')),
        "prometheus: headers: 'X-A\\r\\nAuthorization': not a valid header name; use letters, "
        "digits and '-' only, like X-Scope-OrgID",
    ),
    (
        "an empty header name",
        _file(_headers("{'': s3cret}")),
        "prometheus: headers: '': not a valid header name; use letters, digits and '-' only, "
        "like X-Scope-OrgID",
    ),
    (
        "a credential header in capitals",
        _file(_headers("{PROXY-AUTHORIZATION: Basic s3cret}")),
        "prometheus: headers: 'PROXY-AUTHORIZATION' holds a credential; use bearer_token_file, "
        "bearer_token_env or basic_auth instead",
    ),
    (
        "a header value holding a line break is not echoed",
        _file(_headers('{X-Api-Key: "s3cret\\r\\nX-Evil: 1"}')),
        "prometheus: headers: X-Api-Key: the value holds a control character (a line break?); "
        "remove it",
    ),
    (
        "a header value holding a NUL is not echoed",
        _file(_headers('{X-Api-Key: "s3cret\\0"}')),
        "prometheus: headers: X-Api-Key: the value holds a control character (a line break?); "
        "remove it",
    ),
    (
        "a header value that is not ASCII is not echoed",
        _file(_headers("{X-Api-Key: s3cret€}")),
        "prometheus: headers: X-Api-Key: the value holds a character that is not ASCII; an HTTP "
        "header carries ASCII only",
    ),
    (
        "an unknown key of 100,000 characters is cut in the path",
        _file(GOOD + "    ? " + "k" * 100_000 + "\n    : 1\n"),
        "slos[0] 'api-read': " + "k" * 39 + "…: unknown key; remove it or check its spelling",
    ),
    (
        "a Python object tag",
        _file(GOOD + "x: !!python/object/apply:os.system [echo hi]\n"),
        "line 7: not valid YAML: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system'",
    ),
    (
        "two documents in one file",
        _file(GOOD + "---\n" + GOOD),
        "line 7: not valid YAML: expected a single document in the stream, but found another "
        "document",
    ),
    (
        "a huge version string is cut",
        _file("version: " + "v" * 100_000 + "\n"),
        "version: must be guardian/v1 (got 'vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
        "vvvvvvvvvvvvvvvvvvvv'…)",
    ),
]


@pytest.mark.parametrize(("build", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_guardian_check_refuses_with_one_exact_line(
    tmp_path: Path, build: Case, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target, prefix = build(tmp_path)
    assert main(["check", "-c", str(target)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"guardian: {prefix}{expected}\n"
    assert "s3cret" not in captured.err + captured.out


def test_the_good_base_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = _file(GOOD)(tmp_path)
    assert main(["check", "-c", str(path)]) == 0, capsys.readouterr().err
    path, _ = _with_book(BOOK)(tmp_path)
    assert main(["check", "-c", str(path)]) == 0, capsys.readouterr().err
    shallow = HEAD + "window_sets: {f: [{severity: page, long: 1h, short: 5m, factor: 2}]}\n"
    path, _ = _file(shallow + SLO + "    labels: {team: a}\n" + "    min_events: 7\n")(tmp_path)
    assert main(["check", "-c", str(path)]) == 0, capsys.readouterr().err
    deep = "x: " + _nested(62) + "\n"
    assert main(["check", "-c", str(_file(GOOD + deep)(tmp_path)[0])]) == 2
    assert "x: unknown key" in capsys.readouterr().err, "62 levels parse; the key is unknown"


def test_a_utf8_byte_order_mark_is_fine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = _file(b"\xef\xbb\xbf" + GOOD.encode())(tmp_path)
    assert main(["check", "-c", str(path)]) == 0, capsys.readouterr().err


class _Nudge(BaseModel):
    factor: float


def test_a_non_finite_action_parameter_is_refused(tmp_path: Path) -> None:
    book = BOOK.replace("pause-rollout", "nudge").replace(
        "{kind: Deployment, namespace: x, name: y}", "{factor: .nan}"
    )
    (tmp_path / "book.yaml").write_text(book)
    with pytest.raises(ConfigErrors) as caught:
        load_playbooks([tmp_path], {"nudge": _Nudge}, ["api-read"])
    assert caught.value.message == (
        f"{tmp_path / 'book.yaml'}: steps[0] 'pause': params: factor: must be a finite number "
        "(got nan)"
    )


def _measured(tmp_path: Path, target: Path) -> tuple[int, str, float, int]:
    """``guardian check -c target`` as a process: exit code, stderr, seconds, peak RSS (KiB)."""
    began = time.monotonic()
    process = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "guardian"), "check", "-c", str(target)],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "stderr").open("w"),
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - began
    return process.returncode, (tmp_path / "stderr").read_text(), seconds, usage.ru_maxrss


@pytest.mark.parametrize(
    "name", ["an alias bomb under objective", "a 50 MB file", "a symlink to /dev/zero"]
)
def test_refusals_are_quick_and_small_as_processes(tmp_path: Path, name: str) -> None:
    build = next(c[1] for c in CASES if c[0] == name)
    target, prefix = build(tmp_path)
    code, err, seconds, rss = _measured(tmp_path, target)
    print(f"{name}: exit {code} in {seconds:.2f}s, peak RSS {rss / 1024:.0f} MiB")
    assert (code, err.count("\n")) == (2, 1), err
    assert err.startswith(f"guardian: {prefix}")
    assert seconds < 60, "refused long before anyone would call it a hang"
    assert rss < 300 * 1024, "nothing expanded, nothing read whole"
