#!/usr/bin/env bash
# Set up the environment if needed, then run the linter and the whole test suite (real-data tests included
# when the recorded data sets are found at ../shared/data or $SSL_SKEL_DATA_ROOT).
#
#   bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
venv=${SSL_SKEL_VENV:-.venv}
"$venv/bin/ruff" check .
"$venv/bin/python" -m pytest "$@"
