#!/usr/bin/env bash
# The whole test suite, after setting everything up. CI runs exactly this (see .ci/run).
# P2K_FULL=1 runs the long matrices as well.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Style and types first: a minute of pytest is not spent on a tree that does not pass them.
.venv/bin/ruff check p2k tests
.venv/bin/mypy          # configured in pyproject.toml ([tool.mypy]: strict on vfs, hyper, etfs, structures)
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  echo "test.sh: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit $rc
