#!/usr/bin/env bash
# The main job on the embedded synthetic data set, from a fresh clone: set up the environment, then prepare
# the synthetic data set into data/synthetic.
#
#   bash scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
venv=${SSL_SKEL_VENV:-.venv}
out=${SSL_SKEL_QUICKSTART_DIR:-data/synthetic}
if [ -f "$out/manifest.json" ]; then
    echo "quickstart: the synthetic data set is already prepared in $out"
else
    "$venv/bin/ssl-skel" prepare synthetic --out "$out"
fi
echo "quickstart: the synthetic data set is ready in $out."
echo "quickstart: nothing is trained yet: the quickstart's pretraining + linear/kNN evaluation arrives with the"
echo "quickstart: evaluation module. Pretraining alone runs with:"
echo "  $venv/bin/ssl-skel pretrain -c configs/pretrain/hiclr/synthetic.yaml"
