"""Certificates and keys for the lab, made with the openssl command line.

Input: a directory. Output: a CA, an API-server serving certificate for 127.0.0.1 and
localhost, a service-account signing key pair, and a static token file. Called by
``labctl.up``.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pki:
    """Paths of everything ``make_pki`` wrote, and the admin token."""

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    sa_key: Path
    sa_pub: Path
    tokens: Path
    admin_token: str


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(directory: Path) -> Pki:
    """Create (or reuse) the lab's keys and certificates under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        serving_cert=directory / "apiserver.crt",
        serving_key=directory / "apiserver.key",
        sa_key=directory / "sa.key",
        sa_pub=directory / "sa.pub",
        tokens=directory / "tokens.csv",
        admin_token=_token(directory / "admin.token"),
    )
    if not pki.ca_cert.exists():
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            "/CN=guardian-lab-ca",
            "-keyout",
            str(pki.ca_key),
            "-out",
            str(pki.ca_cert),
        )
    if not pki.serving_cert.exists():
        ext = directory / "apiserver.ext"
        ext.write_text(
            "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,"
            "DNS:kubernetes.default,DNS:kubernetes.default.svc\n"
            "extendedKeyUsage=serverAuth\n"
        )
        csr = directory / "apiserver.csr"
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=kube-apiserver",
            "-keyout",
            str(pki.serving_key),
            "-out",
            str(csr),
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(pki.ca_cert),
            "-CAkey",
            str(pki.ca_key),
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            str(ext),
            "-out",
            str(pki.serving_cert),
        )
    if not pki.sa_key.exists():
        _openssl("genrsa", "-out", str(pki.sa_key), "2048")
        _openssl("rsa", "-in", str(pki.sa_key), "-pubout", "-out", str(pki.sa_pub))
    pki.tokens.write_text(
        f'{pki.admin_token},admin,admin,"system:masters"\n'
        f'{_token(directory / "telemetry.token")},telemetry-agent,telemetry-agent,"telemetry"\n'
    )
    return pki


def _token(path: Path) -> str:
    if not path.exists():
        path.write_text(secrets.token_hex(16))
        path.chmod(0o600)
    return path.read_text().strip()


def telemetry_token(directory: Path) -> str:
    """The token the load generator's fake telemetry agents authenticate with."""
    return _token(directory / "telemetry.token")
