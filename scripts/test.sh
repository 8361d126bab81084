#!/usr/bin/env bash
# `npm test`: makes sure the real peers the tests need are present and a Redis answers (scripts/test-env.sh), then
# typechecks, checks the import rules and runs vitest. Nothing is mocked: a missing service makes tests fail, never skip.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/test-env.sh

tsc --noEmit -p tsconfig.json
# Import rules of src/ (layers, no runtime cycles): .dependency-cruiser.cjs. The baseline lists known violations
# still to be removed; a new one fails the run.
depcruise src --config .dependency-cruiser.cjs --ignore-known .dependency-cruiser-known-violations.json
exec vitest run "$@"
