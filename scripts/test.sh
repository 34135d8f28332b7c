#!/usr/bin/env bash
# The whole test suite, after setting everything up. CI runs exactly this (see .ci/run).
# P2K_FULL=1 runs the long matrices as well.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  echo "test.sh: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit $rc
