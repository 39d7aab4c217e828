#!/usr/bin/env bash
# The main job on the embedded synthetic data set, from a fresh clone: set up the environment, then HiCLR
# pretraining followed by linear probe and kNN of the pretrained and of a randomly initialised encoder, compared
# in one table (ssl-skel quickstart). Arguments are passed on, e.g. --out DIR.
#
#   bash scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
venv=${SSL_SKEL_VENV:-.venv}
exec "$venv/bin/ssl-skel" quickstart "$@"
