#!/usr/bin/env bash
# `npm run test:mutation [-- scope...]`: StrykerJS over the security-critical code, one scope at a time (scopes and
# their tests: stryker.config.mjs; default: all of them). Incremental: a run reuses the results of mutants whose code
# and tests did not change (reports/mutation/<scope>/stryker-incremental.json), so re-running after a small change
# is quick. Slow on 2 cores: run it at a quiet moment. TOLLGATE_MUTATION_CONCURRENCY sets the number of test runners
# (default 1); TOLLGATE_MUTATION_FILES (comma-separated globs) mutates only those files of the scope,
# TOLLGATE_MUTATION_TESTS runs only those of its tests (the score is then a lower bound). Not part of npm test or .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/test-env.sh

scopes=("$@")
if [ ${#scopes[@]} -eq 0 ]; then
  mapfile -t scopes < <(node --input-type=module -e "process.env.TOLLGATE_MUTATION_SCOPE='identity'; const { SCOPES } = await import('./stryker.config.mjs'); console.log(Object.keys(SCOPES).join('\n'))")
fi
status=0
for scope in "${scopes[@]}"; do
  echo "== mutation testing: $scope"
  TOLLGATE_MUTATION_SCOPE="$scope" stryker run stryker.config.mjs || status=$?
done
exit $status
