#!/usr/bin/env bash
# Installs Debian's PostgreSQL server when it is missing. Its cluster service is not used:
# guardian's tests start their own throw-away server on 127.0.0.1.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "installing Debian's postgresql package..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
if command -v systemctl >/dev/null && systemctl is-active --quiet postgresql 2>/dev/null; then
  $SUDO systemctl disable --now postgresql >/dev/null 2>&1 || true
fi
ls /usr/lib/postgresql/*/bin/initdb >/dev/null
