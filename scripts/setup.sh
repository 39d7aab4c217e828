#!/usr/bin/env bash
# Create the virtual environment (if needed) and install ssl-skel with its development tools.
#
#   bash scripts/setup.sh
#
# Environment:
#   PYTHON                 interpreter used to create the environment (default: python3)
#   SSL_SKEL_VENV          environment directory (default: .venv in the project)
#   SSL_SKEL_TORCH         torch requirement installed first when torch is absent (default: torch==2.13.0)
#   SSL_SKEL_TORCH_INDEX   optional package index for torch, e.g. https://download.pytorch.org/whl/cpu
#                          (CPU-only wheels) or https://download.pytorch.org/whl/cu126 (a CUDA build)
# An environment that already has torch keeps it: install your preferred build first to use it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python_bin=${PYTHON:-python3}
venv=${SSL_SKEL_VENV:-.venv}

if [ ! -x "$venv/bin/python" ]; then
    echo "ssl-skel setup: creating the environment in $venv"
    "$python_bin" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

if ! "$venv/bin/python" -c "import torch" >/dev/null 2>&1; then
    torch_req=${SSL_SKEL_TORCH:-torch==2.13.0}
    echo "ssl-skel setup: installing $torch_req"
    if [ -n "${SSL_SKEL_TORCH_INDEX:-}" ]; then
        "${pip[@]}" install -q "$torch_req" --index-url "$SSL_SKEL_TORCH_INDEX"
    else
        "${pip[@]}" install -q "$torch_req"
    fi
fi

echo "ssl-skel setup: installing ssl-skel and its development tools"
"${pip[@]}" install -q -e ".[dev]"
"$venv/bin/python" -c "import torch, ssl_skel; print(f'ssl-skel {ssl_skel.__version__} ready (torch {torch.__version__})')"
