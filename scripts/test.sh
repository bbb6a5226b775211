#!/usr/bin/env bash
# Runs the whole test suite: unit, integration (root, real kernel) and e2e (real binaries over
# mTLS). Files run one at a time: integration tests share the machine's cgroups and QEMU.
# Pass file paths to run only those.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.json
if [ "$#" -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(find test/unit test/integration test/e2e -name '*.test.ts' 2>/dev/null | sort)
fi
exec node --import tsx --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
