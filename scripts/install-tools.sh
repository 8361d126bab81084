#!/usr/bin/env bash
# Installs what the tests need outside npm: Redis (Debian), opa, spire-server and spire-agent (built from the Go module
# proxy).
# Binaries are cached in ${TOLLGATE_CACHE:-~/.cache/tollgate}/bin so fresh clones reuse them.
set -euo pipefail
CACHE="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}"
BIN="$CACHE/bin"
mkdir -p "$BIN"

OPA_VERSION=v1.22.3
SPIRE_VERSION=v1.13.3
HELM_VERSION=v3.22.0

if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server (Debian)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

if [ ! -x "$BIN/opa" ] || ! "$BIN/opa" version 2>/dev/null | grep -q "${OPA_VERSION#v}"; then
  echo "building opa $OPA_VERSION (Go module proxy; ~2 min the first time)"
  GOBIN="$BIN" go install "github.com/open-policy-agent/opa@$OPA_VERSION"
fi

# spire-server and spire-agent come from the same module (`go install ...@version` is refused for it here: a scratch
# module with `go get -tool` instead); the agent build reuses most of the server's build cache.
for tool in spire-server spire-agent; do
  if [ ! -x "$BIN/$tool" ] || ! "$BIN/$tool" --version 2>&1 | grep -q "${SPIRE_VERSION#v}"; then
    echo "building $tool $SPIRE_VERSION (Go module proxy; several minutes the first time)"
    work="$(mktemp -d)"
    (cd "$work" && go mod init tollgate-tools >/dev/null 2>&1 \
      && go get -tool "github.com/spiffe/spire/cmd/$tool@$SPIRE_VERSION" >/dev/null 2>&1 \
      && GOBIN="$BIN" go install "github.com/spiffe/spire/cmd/$tool")
    rm -rf "$work"
  fi
done

if [ ! -x "$BIN/helm" ] || ! "$BIN/helm" version --short 2>/dev/null | grep -q "${HELM_VERSION%.*}"; then
  echo "building helm $HELM_VERSION (Go module proxy)"
  GOBIN="$BIN" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi

echo "tools ready in $BIN: $(ls "$BIN" | tr '\n' ' ')"
