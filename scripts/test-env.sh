# Sourced by scripts/test.sh and scripts/mutation.sh: the real peers the tests need (opa, spire-server, spire-agent,
# helm, promtool from install-tools.sh; a Redis started for the run unless REDIS_URL already answers) and the PATH
# that finds them. Expects to run from the repository root.
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
