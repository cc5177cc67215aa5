#!/usr/bin/env bash
# Builds the lab's binaries from Go modules into ~/.cache/guardian/lab/<versions>/bin and
# reuses them when present. Each component gets its own tools module so versions don't drag
# each other. Usage: lab/build.sh [component...]   (default: all but thanos, which `lab fleet up`
# builds)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
key="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_coredns-${COREDNS_VERSION}_helm-${HELM_VERSION}"
cache="${GUARDIAN_CACHE:-$HOME/.cache/guardian}/lab/$key"
bin="$cache/bin"
work="$cache/src"
mkdir -p "$bin" "$work"
export CGO_ENABLED=0 GOFLAGS="-trimpath -mod=mod" GOTOOLCHAIN=local

log() { printf '[lab build] %s\n' "$*" >&2; }

# One build at a time per cache (parallel test workers, a demo beside the tests): the second
# waits, then finds the binaries built and reuses them.
exec 9>"$cache/.build.lock"
if ! flock -n 9; then
  log "another lab/build.sh is building into $cache; waiting for it"
  flock 9
fi

# Runs "$@" (a build) in the background and says what it builds, every 30 s how long it has
# been at it, and when it is done: a first build takes minutes and must never look stuck.
timed() {
  local label="$1"; shift
  local t0 pid waited=0
  t0=$(date +%s)
  log "$label: building"
  "$@" 9>&- &  # the build does not hold the lock if this script is killed
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    waited=$((waited + 1))
    [ $((waited % 30)) -eq 0 ] && kill -0 "$pid" 2>/dev/null &&
      log "$label: still building ($(( $(date +%s) - t0 ))s)"
  done
  wait "$pid" || { log "$label: FAILED after $(( $(date +%s) - t0 ))s"; return 1; }
  log "$label: built in $(( $(date +%s) - t0 ))s"
}

# A tools module: go.mod requiring MODULE@VERSION (plus extra lines), built with `go build`.
tools_module() {
  local name="$1" module="$2" version="$3" extra="${4:-}"
  local dir="$work/$name"
  rm -rf "$dir" && mkdir -p "$dir"
  printf 'module guardian.lab/%s\n\ngo 1.24.0\n\nrequire %s %s\n%s\n' \
    "$name" "$module" "$version" "$extra" > "$dir/go.mod"
  echo "$dir"
}

kube_replaces() {
  # The k8s.io/kubernetes go.mod pins its staging modules at v0.0.0 and replaces them with
  # local directories; outside that repository they are the published v0.<minor>.<patch>.
  local gomod staging
  gomod="$(cd "$work" && go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" |
    sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  staging="v0.${K8S_VERSION#v1.}"
  printf 'replace (\n'
  awk '/^\t(k8s\.io\/[^ ]+) v0\.0\.0$/ {print $1}' "$gomod" | sort -u |
    while read -r mod; do printf '\t%s => %s %s\n' "$mod" "$mod" "$staging"; done
  printf ')\n'
}

build_kube() {
  local want=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  local missing=()
  for b in "${want[@]}"; do [ -x "$bin/$b" ] || missing+=("$b"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "building ${missing[*]} ${K8S_VERSION} (first time: several minutes each)"
  local dir major minor replaces
  log "kube: resolving the modules of k8s.io/kubernetes ${K8S_VERSION}"
  replaces="$(kube_replaces)"
  dir="$(tools_module kube k8s.io/kubernetes "$K8S_VERSION" "$replaces")"
  major="${K8S_VERSION#v}"; major="${major%%.*}"
  minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
  local ld=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=${K8S_VERSION} -X $pkg.gitMajor=${major} -X $pkg.gitMinor=${minor}"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  local i=0
  for b in "${missing[@]}"; do
    i=$((i + 1))
    timed "$b ${K8S_VERSION} ($i of ${#missing[@]})" \
      go -C "$dir" build -ldflags "-s -w $ld" -o "$bin/$b" "k8s.io/kubernetes/cmd/$b"
  done
}

build_simple() {
  local name="$1" module="$2" version="$3" package="$4" out="$5" ldflags="${6:-}"
  [ -x "$bin/$out" ] && return 0
  local dir
  dir="$(tools_module "$name" "$module" "$version")"
  timed "$out $version" go -C "$dir" build -ldflags "-s -w $ldflags" -o "$bin/$out" "$package"
}

# Thanos's go.mod replaces some of its dependencies, and a dependency's replaces are ignored:
# the tools module repeats them (its `replace` block, verbatim). The build tags are its own
# (.promu.yml): without `slicelabels` its zero-copy label conversions read Prometheus's labels
# in the wrong layout, and the sidecar panicked on Query's first Info call (makeslice: len out
# of range).
build_thanos() {
  local out="thanos-${THANOS_VERSION}"
  [ -x "$bin/$out" ] && return 0
  local gomod replaces dir
  gomod="$(cd "$work" && go mod download -json "github.com/thanos-io/thanos@${THANOS_VERSION}" |
    sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  replaces="$(sed -n '/^replace (/,/^)/p' "$gomod")"
  dir="$(tools_module thanos github.com/thanos-io/thanos "$THANOS_VERSION" "$replaces")"
  timed "$out (first time: 3 to 13 minutes on 2 cores)" go -C "$dir" build \
    -tags netgo,slicelabels \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=${THANOS_VERSION#v}" \
    -o "$bin/$out" github.com/thanos-io/thanos/cmd/thanos
}

components=("$@")
[ ${#components[@]} -eq 0 ] && components=(etcd kube kwok coredns helm kube-state-metrics)
started=$(date +%s)
for c in "${components[@]}"; do
  case "$c" in
    kube) build_kube ;;
    etcd) build_simple etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 etcd ;;
    kwok) build_simple kwok sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok kwok ;;
    coredns) build_simple coredns github.com/coredns/coredns "$COREDNS_VERSION" github.com/coredns/coredns coredns ;;
    helm) build_simple helm helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm helm \
            "-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" ;;
    kube-state-metrics)
      build_simple ksm k8s.io/kube-state-metrics/v2 "$KSM_VERSION" k8s.io/kube-state-metrics/v2 \
        "kube-state-metrics-${KSM_VERSION}" ;;
    thanos) build_thanos ;;
    *) log "unknown component $c (etcd kube kwok coredns helm kube-state-metrics thanos)"; exit 2 ;;
  esac
done
elapsed=$(( $(date +%s) - started ))
[ "$elapsed" -gt 5 ] && log "built in ${elapsed}s into $bin ($(du -sh "$bin" | cut -f1))"
echo "$bin"
