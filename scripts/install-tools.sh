#!/usr/bin/env bash
# Installs what the tests need outside npm: Redis and Chromium (Debian), opa, spire-server, spire-agent, helm and promtool (built
# from the Go module proxy), tollgate-regoc (tools/regoc, built here), and the Python openai client's virtualenv (PyPI).
# Binaries are cached in ${TOLLGATE_CACHE:-~/.cache/tollgate}/bin so fresh clones reuse them.
set -euo pipefail
CACHE="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}"
BIN="$CACHE/bin"
mkdir -p "$BIN"

OPA_VERSION=v1.22.3
SPIRE_VERSION=v1.13.3
# helm from its v4 module (the proxy serves the v3 line's newest tags but does not approve them here).
HELM_VERSION=v4.3.2
PROMTOOL_VERSION=v0.316.0

if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server (Debian)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

# Chromium for the operator console's browser tests (driven by playwright-core, the npm package, with this binary).
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (Debian)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

if [ ! -x "$BIN/opa" ] || ! "$BIN/opa" version 2>/dev/null | grep -q "${OPA_VERSION#v}"; then
  echo "building opa $OPA_VERSION (Go module proxy; ~2 min the first time)"
  GOBIN="$BIN" go install "github.com/open-policy-agent/opa@$OPA_VERSION"
fi

# tollgate-regoc (tools/regoc): the persistent Rego -> WASM compiler a live policy directory is built with (OPA's
# compiler from the same module version as opa above; without it the gateway runs `opa build` per edit). Rebuilt
# when its sources or OPA_VERSION change: the binary prints the stamp it was built with; built aside, moved in place.
grep -q "github.com/open-policy-agent/opa $OPA_VERSION\$" tools/regoc/go.mod \
  || { echo "tools/regoc/go.mod must require github.com/open-policy-agent/opa $OPA_VERSION (OPA_VERSION)" >&2; exit 1; }
REGOC_STAMP="$(cat tools/regoc/go.mod tools/regoc/go.sum tools/regoc/*.go | sha256sum | cut -c1-16)-$OPA_VERSION"
if [ "$("$BIN/tollgate-regoc" --version 2>/dev/null)" != "$REGOC_STAMP" ]; then
  echo "building tollgate-regoc (tools/regoc, opa $OPA_VERSION; ~1 min the first time, reuses opa's module cache)"
  regoc_scratch="$(mktemp -d)"
  (cd tools/regoc && go build -trimpath -ldflags "-X main.version=$REGOC_STAMP" -o "$regoc_scratch/tollgate-regoc" .)
  mv "$regoc_scratch/tollgate-regoc" "$BIN/tollgate-regoc"
  rm -rf "$regoc_scratch"
fi

# The module version a binary was built from (`go install` leaves no version string of its own in helm/promtool).
built_from() { go version -m "$1" 2>/dev/null | awk -v m="$2" '$1 == "mod" && $2 == m { print $3 }'; }

# Built into a scratch GOBIN, then moved in place: a half-written binary is never on PATH, and a concurrent test run
# sees either the old binary or the new one.
go_tool() {
  local name=$1 pkg=$2 version=$3 scratch
  scratch="$(mktemp -d)"
  if ! GOBIN="$scratch" go install "$pkg@$version"; then
    # Some modules' newest versions are only reachable through a module that requires them (as spire-server and spire-agent below).
    (cd "$scratch" && go mod init tollgate-tools >/dev/null 2>&1 && go get -tool "$pkg@$version" >/dev/null 2>&1 \
      && GOBIN="$scratch" go install "$pkg")
  fi
  mv "$scratch/$name" "$BIN/$name"
  rm -rf "$scratch"
}

# spire-server and spire-agent come from the same module (`go install ...@version` is refused for it here, so go_tool
# falls back to a scratch module with `go get -tool`); the second build reuses most of the first one's build cache.
for tool in spire-server spire-agent; do
  if [ ! -x "$BIN/$tool" ] || ! "$BIN/$tool" --version 2>&1 | grep -q "${SPIRE_VERSION#v}"; then
    echo "building $tool $SPIRE_VERSION (Go module proxy; several minutes the first time)"
    go_tool "$tool" "github.com/spiffe/spire/cmd/$tool" "$SPIRE_VERSION"
  fi
done

if [ "$(built_from "$BIN/helm" helm.sh/helm/v4)" != "$HELM_VERSION" ]; then
  echo "building helm $HELM_VERSION (Go module proxy; ~3 min the first time)"
  go_tool helm helm.sh/helm/v4/cmd/helm "$HELM_VERSION"
fi

if [ "$(built_from "$BIN/promtool" github.com/prometheus/prometheus)" != "$PROMTOOL_VERSION" ]; then
  echo "building promtool $PROMTOOL_VERSION (Go module proxy; a large build, ~5-10 min the first time)"
  go_tool promtool github.com/prometheus/prometheus/cmd/promtool "$PROMTOOL_VERSION"
fi

# A Python client's virtualenv (`venv-<name>` under the cache), from Debian's python3.11, every package pinned in its
# requirements file (installed --no-deps). Rebuilt only when that file changes; built aside and moved in place, so a
# concurrent run never sees half of it.
python_client_venv() {
  local name="$1" req="$2" venv="$CACHE/venv-$1" stamp scratch
  stamp="$(sha256sum "$req" | cut -c1-16)"
  [ "$(cat "$venv/.stamp" 2>/dev/null)" = "$stamp" ] && return 0
  echo "building the $name Python client virtualenv ($venv)"
  [ -x /usr/bin/python3.11 ] || { echo "/usr/bin/python3.11 is missing (Debian's python3.11 and python3.11-venv)" >&2; exit 1; }
  scratch="$CACHE/venv-$name.build.$$"
  rm -rf "$scratch"
  /usr/bin/python3.11 -m venv "$scratch"
  "$scratch/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r "$req"
  echo "$stamp" > "$scratch/.stamp"
  rm -rf "$venv"
  mv "$scratch" "$venv"
}

# The Python `openai` client for the OpenAI-compatible tests (the Triton tests keep their virtualenv apart), the
# Python A2A client (a2a-sdk) for the A2A tests, and its v0.3-era release (a2a-sdk 0.3: client, and server with
# uvicorn for a reference 0.3 agent) for the A2A v0.3 tests.
python_client_venv openai test/python/requirements-openai.txt
python_client_venv a2a test/python/requirements-a2a.txt
python_client_venv a2a03 test/python/requirements-a2a03.txt

# Triton (nvidia-pytriton bundles tritonserver; runs on CPU) and tritonclient for the KServe v2 tests, in a virtualenv
# of their own from Debian's python3.11 (the Python backend stub links the system libpython3.11), every package
# pinned (test/python/requirements-triton.txt, --no-deps). Rebuilt only when that file changes; under a lock, so
# concurrent runs build it once (the second waits, then finds it ready); built aside and moved in place.
TRITON_VENV="$CACHE/venv-triton"
TRITON_REQ=test/python/requirements-triton.txt
triton_stamp="$(sha256sum "$TRITON_REQ" | cut -c1-16)"
if [ "$(cat "$TRITON_VENV/.stamp" 2>/dev/null)" != "$triton_stamp" ]; then
  exec 9>"$CACHE/venv-triton.lock"
  flock 9
  if [ "$(cat "$TRITON_VENV/.stamp" 2>/dev/null)" != "$triton_stamp" ]; then
    echo "building the Triton virtualenv ($TRITON_VENV; ~400 MB, about a minute)"
    [ -x /usr/bin/python3.11 ] || { echo "/usr/bin/python3.11 is missing (Debian's python3.11 and python3.11-venv)" >&2; exit 1; }
    scratch="$CACHE/venv-triton.build.$$"
    rm -rf "$scratch"
    /usr/bin/python3.11 -m venv "$scratch"
    "$scratch/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r "$TRITON_REQ"
    echo "$triton_stamp" > "$scratch/.stamp"
    rm -rf "$TRITON_VENV"
    mv "$scratch" "$TRITON_VENV"
  fi
  flock -u 9
  exec 9>&-
fi

echo "tools ready in $BIN: $(ls "$BIN" | tr '\n' ' ')"
