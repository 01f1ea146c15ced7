#!/usr/bin/env bash
# Create the reference venvs of the benchmarks (never part of pyproject.toml):
#   benchmarks/.venvs/tlens      TransformerLens 4 (TransformerBridge)   bench_extract.py
#   benchmarks/.venvs/nnsight    nnsight                                 bench_extract.py
#   benchmarks/.venvs/tuned-lens tuned-lens 0.2.0                        bench_tuned_lens.py
#   benchmarks/.venvs/elk        eleuther-elk 0.1.1                      bench_ccs.py
#   benchmarks/.venvs/nanogcg    nanoGCG 0.3.0                           bench_gcg.py
#   benchmarks/.venvs/interventions  concept-erasure 0.2.4, steering-vectors 0.12.2, repeng
#                                (numpy < 2: TransformerLens stays in tlens)  check_interventions_reference.py
#   benchmarks/.venvs/sgw        safety-gridworlds-gymnasium 2.0.4 + pycolab 1.2 + DeepMind's
#                                ai_safety_gridworlds (source checkout in AISG_SRC; not on PyPI)
#                                check_sandbox_reference.py, bench_sandbox.py   (no torch)
#   benchmarks/.venvs/saelens    SAELens 6.54                            bench_sae.py
#   benchmarks/.venvs/crafter    crafter 1.8.3 (Hafner 2021)           bench_openworld.py (no torch)
# Usage: bash benchmarks/setup_refs.sh [tlens nnsight tuned-lens elk nanogcg interventions saelens crafter sandbox] (default:
# the first five; sandbox needs AISG_SRC=/path/to/a/checkout/of/deepmind/ai-safety-gridworlds)
# torch is pinned to the CPU build first (2.13.0 resolves to the local CPU wheel here; any other
# torch spec pulls a multi-GB CUDA build). Override versions with TLENS_SPEC / NNSIGHT_SPEC.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venvs="$here/.venvs"
python="${PYTHON:-python3}"
torch_spec="${TORCH_SPEC:-torch==2.13.0}"
tlens_spec="${TLENS_SPEC:-transformer-lens==4.3.0}"
nnsight_spec="${NNSIGHT_SPEC:-nnsight==0.8.1}"
tuned_lens_spec="${TUNED_LENS_SPEC:-tuned-lens==0.2.0}"
elk_spec="${ELK_SPEC:-eleuther-elk==0.1.1}"
nanogcg_spec="${NANOGCG_SPEC:-nanogcg==0.3.0}"
erasure_spec="${ERASURE_SPEC:-concept-erasure==0.2.4}"
steering_spec="${STEERING_SPEC:-steering-vectors==0.12.2}"
repeng_spec="${REPENG_SPEC:-repeng}"
saelens_spec="${SAELENS_SPEC:-sae-lens==6.54.0}"
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

for name in "${@:-tlens nnsight tuned-lens elk nanogcg}"; do
    for n in $name; do
        case "$n" in
            tlens) make_venv tlens "$tlens_spec" ;;
            nnsight) make_venv nnsight "$nnsight_spec" ;;
            tuned-lens)
                make_venv tuned-lens "$tuned_lens_spec"
                # tuned-lens 0.2.0 imports torchdata's datapipes, removed after 0.9.0; its torch
                # pin would replace our CPU torch, hence --no-deps.
                "$venvs/tuned-lens/bin/pip" install -q --no-deps torchdata==0.9.0
                ;;
            elk) make_venv elk "$elk_spec" ;;
            nanogcg) make_venv nanogcg "$nanogcg_spec" ;;
            interventions)
                make_venv interventions "$steering_spec"  # brings transformers
                dir="$venvs/interventions"
                cons="$(mktemp)"
                "$dir/bin/python" -c "import torch; print('torch==' + torch.__version__)" >"$cons"
                PIP_CONSTRAINT="$cons" "$dir/bin/pip" install -q "$erasure_spec" "$repeng_spec" \
                    scikit-learn
                # the project's transformers, so both sides read the organism's config alike
                # (steering-vectors declares < 5 but runs on it)
                PIP_CONSTRAINT="$cons" "$dir/bin/pip" install -q "${TRANSFORMERS_SPEC:-transformers==5.24.0}"
                rm -f "$cons"
                "$dir/bin/python" -c "import importlib.metadata as m; print('interventions:', \
', '.join(p + ' ' + m.version(p) for p in ('concept-erasure', 'steering-vectors', 'repeng', \
'transformers', 'torch')))"
                ;;
            saelens) make_venv saelens "$saelens_spec" ;;
            sandbox)
                # pycolab 1.2 (2018) needs numpy < 1.24 (np.fromstring on generators)
                dir="$venvs/sgw"
                [ -x "$dir/bin/python" ] || "$python" -m venv "$dir"
                "$dir/bin/pip" install -q "safety-gridworlds-gymnasium==2.0.4" pycolab==1.2 absl-py
                "$dir/bin/pip" install -q "numpy==1.23.5"
                if [ -z "${AISG_SRC:-}" ] || [ ! -d "$AISG_SRC/ai_safety_gridworlds" ]; then
                    echo "set AISG_SRC to a checkout of deepmind/ai-safety-gridworlds" >&2; exit 2
                fi
                site="$("$dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
                (cd "$AISG_SRC" && pwd) >"$site/aisg_src.pth"
                "$dir/bin/python" -c "import ai_safety_gridworlds, pycolab; print('sandbox: ok')"
                ;;
            crafter)
                dir="$venvs/crafter"
                [ -x "$dir/bin/python" ] || "$python" -m venv "$dir"
                "$dir/bin/pip" install -q "crafter==1.8.3"
                "$dir/bin/python" -c "import crafter; print('crafter: ok')"
                ;;
            *) echo "unknown reference venv: $n" >&2; exit 2 ;;
        esac
    done
done
