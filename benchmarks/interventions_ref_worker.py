"""Reference side of ``check_interventions_reference.py``: runs in the ``interventions``
reference venv (``bash benchmarks/setup_refs.sh interventions``), never in the project's.

Reads ``spec.json`` + ``data.safetensors`` from the folder given on the command line, writes
``ref.json`` + ``ref.safetensors`` there. Tools: steering-vectors 0.12.2
(``train_steering_vector``, mean aggregator), repeng (``read_representations``, ``pca_diff``),
concept-erasure 0.2.4 (``LeaceEraser.fit``), TransformerLens 4.3 (``TransformerBridge`` and
``patching.get_act_patch_resid_pre``).
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def main() -> None:
    folder, tools = Path(sys.argv[1]), set(sys.argv[2].split(","))
    spec = json.loads((folder / "spec.json").read_text())
    data = load_file(str(folder / "data.safetensors"))
    torch.set_num_threads(1)
    out: dict[str, torch.Tensor] = {}
    info: dict[str, object] = {}
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"]).eval()
    tok = AutoTokenizer.from_pretrained(spec["model_dir"])
    with torch.no_grad():
        out["logits"] = model(input_ids=data["clean"]).logits.float()

    pairs = list(zip(spec["positive"], spec["negative"], strict=True))
    if "steering" in tools:
        _steering(model, tok, pairs, spec, out, info)
    if "erasure" in tools:
        _erasure(data, spec, out, info)
    if "tlens" in tools:
        _tlens(tok, data, spec, out, info)
    save_file({k: v.contiguous() for k, v in out.items()}, str(folder / "ref.safetensors"))
    (folder / "ref.json").write_text(json.dumps(info, indent=2))


def _steering(model: Any, tok: Any, pairs: Any, spec: Any, out: Any, info: Any) -> None:
    try:
        from steering_vectors import train_steering_vector

        sv = train_steering_vector(
            model, tok, pairs, layers=spec["layers"], read_token_index=-1, show_progress=False
        )
        for layer in spec["layers"]:
            out[f"caa.{layer}"] = sv.layer_activations[layer].float()
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        info["steering_vectors_error"] = f"{type(exc).__name__}: {exc}"
        info["steering_vectors_trace"] = traceback.format_exc()[-2000:]
    try:
        import repeng.extract as rx

        # repeng finds the block list of Llama/Mistral and GPT-2 only; GPT-NeoX keeps it here
        rx.model_layer_list = lambda m: m.gpt_neox.layers
        entries = [rx.DatasetEntry(positive=p, negative=n) for p, n in pairs]
        dirs = rx.read_representations(model, tok, entries, hidden_layers=spec["layers"])
        for layer in spec["layers"]:
            out[f"pca.{layer}"] = torch.as_tensor(dirs[layer]).float()
    except Exception as exc:  # noqa: BLE001
        info["repeng_error"] = f"{type(exc).__name__}: {exc}"
        info["repeng_trace"] = traceback.format_exc()[-2000:]


def _erasure(data: Any, spec: Any, out: Any, info: Any) -> None:
    try:
        from concept_erasure import LeaceEraser

        x, y = data["leace_x"], data["leace_y"].float()
        eraser = LeaceEraser.fit(x, y)
        out["leace_erased"] = eraser(data["leace_x_test"]).float()
        eraser64 = LeaceEraser.fit(x.double(), y.double())
        out["leace_erased64"] = eraser64(data["leace_x_test"].double()).float()
        for name, (xx, yy) in (("32", (x, y)), ("64", (x.double(), y.double()))):
            LeaceEraser.fit(xx, yy)  # warm-up
            ts = []
            for _ in range(spec["reps"]):
                t = time.perf_counter()
                LeaceEraser.fit(xx, yy)
                ts.append(time.perf_counter() - t)
            info[f"leace_fit{name}_s"] = sorted(ts)[len(ts) // 2]
    except Exception as exc:  # noqa: BLE001
        info["concept_erasure_error"] = f"{type(exc).__name__}: {exc}"


def _tlens(tok: Any, data: Any, spec: Any, out: Any, info: Any) -> None:
    try:
        from transformer_lens import patching
        from transformer_lens.model_bridge import TransformerBridge

        bridge = TransformerBridge.boot_transformers(
            spec["model_dir"], device="cpu", dtype=torch.float32, tokenizer=tok
        )
        bridge.eval()
        clean, corr = data["clean"], data["corrupted"]
        ans, wrong = data["answer"], data["wrong"]
        rows = torch.arange(len(ans))

        def metric(logits: torch.Tensor) -> torch.Tensor:
            last = logits[:, -1].float()
            return (last[rows, ans] - last[rows, wrong]).mean()

        with torch.no_grad():
            _, cache = bridge.run_with_cache(clean)
            ts = []
            for _ in range(spec["reps"]):
                t = time.perf_counter()
                res = patching.get_act_patch_resid_pre(bridge, corr, cache, metric)
                ts.append(time.perf_counter() - t)
        out["tl_resid_pre"] = res.float()
        info["tl_patch_s"] = sorted(ts)[len(ts) // 2]
    except Exception as exc:  # noqa: BLE001
        info["transformer_lens_error"] = f"{type(exc).__name__}: {exc}"
        info["transformer_lens_trace"] = traceback.format_exc()[-2000:]


if __name__ == "__main__":
    main()
