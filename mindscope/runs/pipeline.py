"""The pipeline behind ``mindscope run`` and ``mindscope demo``.

One run: load every model the enabled stages read (once each), run each stage through
:func:`mindscope.analyses.run_stage` (by default the lens analysis, then the reporter analysis;
any registered stage a config lists), writing the results table after each stage, then the
report, then the final manifest. Stages are pure functions (:mod:`mindscope.analyses.base`);
this module alone writes: artefacts, the data hashes in the manifest, and the results rows,
stamped with the model's provenance by :func:`mindscope.results.stamp`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from mindscope.analyses import StageOutput, get_stage, run_stage
from mindscope.results import stamp
from mindscope.runs.config import RunConfig, run_stages, to_dict, validate
from mindscope.runs.folder import LOGGER_NAME, RunFolder

__all__ = ["run_pipeline", "demo_config"]

log = logging.getLogger(f"{LOGGER_NAME}.runs")


def demo_config(
    output_dir: str = "runs", device: str = "auto", seed: int = 0, quick: bool = False
) -> RunConfig:
    """The config of ``mindscope demo`` (``quick``: fewer steps and examples, for tests/CI)."""
    cfg = RunConfig(name="demo", output_dir=output_dir, seed=seed)
    cfg.model.name = "organism:pocket-lm"  # lens analysis: a >= 6-layer LM of docstrings
    cfg.elicit.model = "organism:quirky-arith"  # reporters: Alice/Bob addition checker
    cfg.model.device = device
    # The quirky organism computes the truth at the prompt's last token (middle layers) and
    # says its persona's answer there; it was never trained past the answer token, so the
    # demo reads the prompt (supervised reporters; CCS/CRC need pairs: `mindscope elicit`).
    cfg.elicit.read = "prompt"
    cfg.elicit.methods = ["lr", "diffmean", "lda", "random"]
    # Sized for a CPU: ~0.4 M lens-training tokens on the 6-layer pocket-lm.
    cfg.lens.steps, cfg.lens.tokens_per_step = 100, 4096
    cfg.elicit.n = 1000
    cfg.lens.trajectory_prompt = "Return the number of items in the"
    if quick:
        cfg.lens.steps, cfg.lens.tokens_per_step, cfg.lens.max_texts = 20, 2048, 64
        cfg.elicit.n = 256
    return validate(cfg, Path.cwd())


def _model_of(cfg: RunConfig, name: str) -> str:
    """The model stage ``name`` reads: its own ``model`` key, else the run's."""
    return getattr(cfg, name).model or cfg.model.name


# ----------------------------------------------------------------------------- helpers


@contextmanager
def _stage(name: str, bar: Any) -> Iterator[None]:
    bar.set_postfix_str(name)
    log.info("stage %s: start", name)
    t0 = time.perf_counter()
    yield
    log.info("stage %s: done in %.1f s", name, time.perf_counter() - t0)
    bar.update(1)


def _write_stage(folder: RunFolder, out: StageOutput, h: Any) -> pd.DataFrame:
    """Write a stage's artefacts and data hashes; returns its rows stamped with ``h`` (a stage
    that reads no model keeps its rows' own provenance)."""
    for name, write in out.artefacts.items():
        write(folder.artefacts / name)
    folder.manifest.data.update(out.data)
    return stamp(out.rows, h) if h is not None else out.rows


def _environment(h: Any) -> dict[str, str]:
    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": str(h.device),
        "dtype": str(h.dtype).removeprefix("torch."),
    }


# ----------------------------------------------------------------------------- the pipeline


def _load_models(
    cfg: RunConfig, folder: RunFolder, load_model: Callable[..., Any] | None
) -> dict[str, Any]:
    """Load every model the enabled analyses read (once each); records them in the manifest."""
    if load_model is None:
        from mindscope.models import load_model as _load

        load_model = _load
    m = cfg.model
    names = [_model_of(cfg, n) for n, _ in run_stages(cfg) if get_stage(n).needs_model]
    models: dict[str, Any] = {}
    for name in dict.fromkeys(names):
        log.info("loading %s", name)
        h = load_model(
            name,
            revision=m.revision if name == m.name else None,
            device=m.device,
            dtype=None if m.dtype == "auto" else m.dtype,
        )
        models[name] = h
        folder.manifest.models.append(
            {"name": h.name, "revision": h.revision, "weights_hash": h.weights_hash}
        )
        folder.manifest.environment.update(_environment(h))
    folder.write_manifest()
    return models


def run_pipeline(
    cfg: RunConfig,
    *,
    progress: bool = True,
    load_model: Callable[..., Any] | None = None,
    threads: int | None = None,
) -> RunFolder:
    """Run every analysis ``cfg`` enables and write a complete run folder.

    The config is checked again first (nothing is loaded before it passes). Results are written
    atomically after each stage; the manifest turns ``complete`` only after the report is in
    place. On any error the manifest says ``failed`` (with the message) and the error propagates.

    Args:
        cfg: a run config (typically from :func:`mindscope.runs.load_config`).
        progress: show progress bars.
        load_model: replaces :func:`mindscope.load_model` (tests pass a tiny model).
        threads: torch threads for the stages (default:
            :func:`mindscope.threads.default_threads`, the free cores).

    Returns:
        The finished :class:`RunFolder`.
    """
    from tqdm.auto import tqdm

    from mindscope.extras import require

    require("report", what="a run (it ends with report.html)")
    from mindscope import threads as thread_policy

    asked = threads
    threads = thread_policy.resolve(threads)

    cfg = validate(cfg, Path.cwd(), check_data=False)  # load_config checked the data
    stages = run_stages(cfg)
    folder = RunFolder.create(cfg.output_dir, cfg.name, seed=cfg.seed)
    folder.write_config(to_dict(cfg))
    frames: list[pd.DataFrame] = []
    with (
        folder.logging(),
        tqdm(
            total=len(stages) + 2,
            desc=f"run {cfg.name}",
            unit="stage",
            disable=not progress,
            position=0,
        ) as bar,
    ):
        try:
            log.info(
                "run %s in %s; config %s",
                cfg.name,
                folder.path,
                json.dumps(to_dict(cfg)),
            )
            with _stage("load models", bar):
                models = _load_models(cfg, folder, load_model)
            for name, sc in stages:
                with _stage(name, bar):
                    h = models.get(_model_of(cfg, name)) if get_stage(name).needs_model else None
                    if asked is None:  # the free cores again: a neighbour may have come or gone
                        threads = thread_policy.resolve(None)
                        log.info("stage %s: %d torch thread(s)", name, threads)
                    out = run_stage(name, h, sc, seed=cfg.seed, threads=threads, progress=progress)
                    frames.append(_write_stage(folder, out, h))
                    folder.write_results(pd.concat(frames, ignore_index=True))
            with _stage("report", bar):
                table = pd.concat(frames, ignore_index=True)
                folder.write_results(table)
                folder.write_report(table)
            folder.finish("complete")
        except BaseException as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.exception("run failed: %s", msg)
            folder.finish("failed", error=f"{type(exc).__name__}: {msg}")
            raise
    return folder
