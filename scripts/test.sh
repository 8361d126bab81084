#!/usr/bin/env bash
# `npm test`: makes sure the real peers the tests need are present and a Redis answers (scripts/test-env.sh), then
# typechecks, checks the import rules and runs vitest. Nothing is mocked: a missing service makes tests fail, never skip.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/test-env.sh

tsc --noEmit -p tsconfig.json
# Import rules of src/ (layers, no runtime cycles): .dependency-cruiser.cjs. There is no baseline: any violation
# fails the run.
depcruise src --config .dependency-cruiser.cjs
exec vitest run "$@"
