#!/usr/bin/env bash
# `npm test`: makes sure the real peers the tests need are present (opa, spire-server, Redis), starts a Redis for
# the run if none answers, then runs vitest. Nothing is mocked: a missing service makes tests fail, never skip.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}"
bash scripts/install-tools.sh >&2
export PATH="$PWD/node_modules/.bin:$CACHE/bin:$PATH"

export TOLLGATE_TEST_REDIS_PORT="${TOLLGATE_TEST_REDIS_PORT:-6390}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:$TOLLGATE_TEST_REDIS_PORT}"
if ! redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1; then
  mkdir -p "$CACHE/redis"
  redis-server --port "$TOLLGATE_TEST_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --pidfile "$CACHE/redis/test.pid" --logfile "$CACHE/redis/test.log" --dir "$CACHE/redis"
  for _ in $(seq 1 50); do redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

tsc --noEmit -p tsconfig.json
# Import rules of src/ (layers, no runtime cycles): .dependency-cruiser.cjs. The baseline lists known violations
# still to be removed; a new one fails the run.
depcruise src --config .dependency-cruiser.cjs --ignore-known .dependency-cruiser-known-violations.json
exec vitest run "$@"
