#!/usr/bin/env bash
# Create the reference venvs used by benchmarks/bench_extract.py (never part of pyproject.toml):
#   benchmarks/.venvs/tlens   TransformerLens 4 (TransformerBridge)
#   benchmarks/.venvs/nnsight nnsight
# torch is pinned to the CPU build first (2.13.0 resolves to the local CPU wheel here; any other
# torch spec pulls a multi-GB CUDA build). Override versions with TLENS_SPEC / NNSIGHT_SPEC.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venvs="$here/.venvs"
python="${PYTHON:-python3}"
torch_spec="${TORCH_SPEC:-torch==2.13.0}"
tlens_spec="${TLENS_SPEC:-transformer-lens==4.3.0}"
nnsight_spec="${NNSIGHT_SPEC:-nnsight==0.8.1}"
mkdir -p "$venvs"

make_venv() {  # name, package spec
    local dir="$venvs/$1"
    if [ ! -x "$dir/bin/python" ]; then
        "$python" -m venv "$dir"
    fi
    "$dir/bin/pip" install -q "$torch_spec"
    # keep the same torch: a constraint stops the tool's requirements from replacing it
    local cons
    cons="$(mktemp)"
    "$dir/bin/python" -c "import torch; print('torch==' + torch.__version__)" >"$cons"
    PIP_CONSTRAINT="${PIP_CONSTRAINT:+$PIP_CONSTRAINT }$cons" "$dir/bin/pip" install -q "$2"
    rm -f "$cons"
    "$dir/bin/python" -c "import importlib.metadata as m, torch, transformers; \
print('$1:', '$2', '->', m.version('$(echo "$2" | sed 's/[=<>!~].*//')'), \
'torch', torch.__version__, 'transformers', transformers.__version__)"
}

make_venv tlens "$tlens_spec"
make_venv nnsight "$nnsight_spec"
