"""In-context learners whose Bayes-optimal predictor is known in closed form.

``icl-regression`` (task diversity, Raventos et al. 2023; Garg et al. 2022): sequences
``(x_1, y_1, ..., x_K, y_K)`` of noisy linear regression, ``y = w . x + e``,
``x ~ N(0, I_D)``, ``e ~ N(0, s^2)``, ``w`` drawn uniformly from a pool of ``M`` tasks sampled
once from ``N(0, I_D)``. The model is a GPT-NeoX reading real-valued tokens: a token is a
feature vector of width ``F = D + 1`` (``x`` tokens ``[x, 0]``, ``y`` tokens ``[0, ..., 0,
y]``), embedded as ``tokens @ W_E[:F]`` (``W_E`` is the model's input embedding: the
"vocabulary" is the ``F`` features, plus an unused end-of-text row), and the prediction of
``y_k`` is output ``F - 1`` (the ``y`` feature) at the position of ``x_k``. So
``load_model("organism:icl-regression")`` is an ordinary :class:`~mindscope.models.ModelHandle`:
``h.forward(inputs_embeds=encode_regression(x, y) @ h.embedding_matrix[:F])``. The organism
``icl-regression-m<M>`` is the same with ``M`` tasks (``mindscope organism train icl-regression
--tasks M``); ``icl-regression`` itself uses :data:`DEFAULT_TASKS`.

``icl-hmm`` (GINC-style, Xie et al. 2021): token sequences from a mixture of small random hidden
Markov models; the exact Bayes predictive and belief state come from the forward algorithm
(:class:`mindscope.bayes.HMMMixture`). It is an ordinary token LM: symbol ``i`` is the
character ``"abcdefgh..."[i]``, and every sequence starts with the end-of-text token.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, models, pre_tokenizers

from mindscope.bayes import (
    FiniteTaskPrior,
    GaussianPrior,
    HMMMixture,
    kl_to_bayes,
    predict,
    random_hmms,
    sample_contexts,
)
from mindscope.errors import MindscopeError
from mindscope.organisms.base import CheckpointWriter, OrganismConfig, OrganismSpec, TrainReport
from mindscope.organisms.checkpoints import checkpoint_steps
from mindscope.organisms.neox import ModelShape, build_model, train_logits
from mindscope.organisms.tokenization import EOS, to_hf, word_level_tokenizer
from mindscope.organisms.trainer import (
    Batch,
    OptimConfig,
    StepObserver,
    TrainingTask,
    deterministic,
    train_loop,
)

__all__ = [
    "DEFAULT_TASKS",
    "RegressionConfig",
    "HMMConfig",
    "encode_regression",
    "regression_predictions",
    "regression_prior",
    "hmm_mixture",
    "hmm_symbols",
    "hmm_logprobs",
    "regression_spec",
    "variant_tasks",
    "REGRESSION_SPEC",
    "HMM_SPEC",
]

DEFAULT_TASKS = 16
"""``M`` of the organism ``icl-regression`` (``icl-regression-m<M>`` for another ``M``)."""

_VARIANT = re.compile(r"^icl-regression-m(\d+)$")


@dataclass(frozen=True)
class RegressionConfig(OrganismConfig):
    """Training config of ``icl-regression``."""

    n_tasks: int = DEFAULT_TASKS
    """``M``: the size of the task pool (drawn once from ``N(0, I_D)`` with ``pool_seed``)."""
    pool_seed: int = 0
    """Seed of the task pool (kept apart from ``seed`` so that seeds share a pool if wanted;
    the default config sets it to ``seed``)."""
    d: int = 4
    """``D``: input width (8 learns too slowly for a CPU budget: see docs/bayes.md)."""
    k: int = 16
    """``K``: pairs per training sequence."""
    noise: float = 0.25
    """``s^2``: the noise variance."""
    max_steps: int = 1200
    """Optimiser steps."""
    batch_size: int = 64
    """Sequences per step."""
    shape: ModelShape = field(
        default_factory=lambda: ModelShape(
            n_layers=3, d_model=64, n_heads=4, d_mlp=128, max_len=64, rotary_pct=0.25
        )
    )
    """Model shape; ``max_len`` (64 = 32 pairs) leaves room for contexts longer than trained."""
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-3, warmup=100))
    """Optimiser settings."""
    eval_contexts: int = 512
    """Held-out contexts scored against dMMSE and ridge at every checkpoint."""


@dataclass(frozen=True)
class HMMConfig(OrganismConfig):
    """Training config of ``icl-hmm``."""

    n_hmms: int = 4
    """HMMs in the training mixture (uniform weights)."""
    n_states: int = 3
    """Hidden states per HMM."""
    n_symbols: int = 4
    """Alphabet size (symbols ``a``, ``b``, ...)."""
    hmm_seed: int = 0
    """Seed of the random HMMs (the held-out ones use ``hmm_seed + 1``)."""
    concentration: float = 0.3
    """Dirichlet concentration of the HMMs' rows (small: peaked, distinguishable processes)."""
    length: int = 32
    """Symbols per sequence."""
    max_steps: int = 4000
    """Optimiser steps (4,000 reach a next-token KL to Bayes below 0.01 nats and a belief
    probe R^2 above 0.9 on two seeds: see docs/bayes.md; 1,500 stopped at 0.011 and 0.89)."""
    batch_size: int = 64
    """Sequences per step."""
    shape: ModelShape = field(
        default_factory=lambda: ModelShape(
            n_layers=3, d_model=64, n_heads=4, d_mlp=128, max_len=64, rotary_pct=0.25
        )
    )
    """Model shape."""
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-3, warmup=100))
    """Optimiser settings."""
    eval_sequences: int = 512
    """Held-out sequences scored against the Bayes predictive at every checkpoint."""


# --------------------------------------------------------------------------- regression
def _regression_tokenizer(d: int) -> Any:
    vocab = {f"x{i}": i for i in range(d)} | {"y": d, EOS: d + 1}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=EOS))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return to_hf(tok)


def encode_regression(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Interleave contexts into feature tokens: ``x [n, K, D]``, ``y [n, K]`` ->
    ``[n, 2K, D + 1]`` (``x_i`` at position ``2i``, ``y_i`` at ``2i + 1``)."""
    n, k, d = x.shape
    tokens = torch.zeros(n, k, 2, d + 1, dtype=torch.float32)
    tokens[:, :, 0, :d] = x
    tokens[:, :, 1, d] = y
    return tokens.reshape(n, 2 * k, d + 1)  # [n, K, 2, F] -> [n, 2K, F]


def _embed(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    w = model.get_input_embeddings().weight  # type: ignore[operator]  # [F + 1, d_model]
    return tokens.to(w) @ w[: tokens.shape[-1]]  # [n, 2K, d_model]


def regression_predictions(
    model: Any, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024
) -> torch.Tensor:
    """The model's prediction of every ``y_k`` from the pairs before it: ``[n, K]``.

    Args:
        model: a ``ModelHandle`` (or a bare GPT-NeoX module) whose input embedding has at least
            ``D + 1`` rows (the data spec of ``icl-regression``).
        x: ``[n, K, D]``; y: ``[n, K]``.
    """
    d = x.shape[-1]
    module = getattr(model, "model", model)
    width = module.get_input_embeddings().weight.shape[0]
    if width < d + 1 or width > d + 2:
        raise MindscopeError(
            f"the model reads {width - 1}-wide feature tokens, the data have width {d + 1} "
            f"(D = {d}): input width does not match the data spec"
        )
    n_ctx = getattr(module.config, "max_position_embeddings", None)
    if n_ctx is not None and 2 * x.shape[1] > n_ctx:
        raise MindscopeError(
            f"a context of {x.shape[1]} pairs needs {2 * x.shape[1]} positions; the model has "
            f"{n_ctx}"
        )
    out = []
    for i in range(0, x.shape[0], batch_size):
        emb = _embed(module, encode_regression(x[i : i + batch_size], y[i : i + batch_size]))
        if hasattr(model, "forward") and hasattr(model, "embedding_matrix"):
            logits = model.forward(inputs_embeds=emb)  # [b, 2K, F + 1]
        else:
            with torch.no_grad():
                logits = train_logits(module, inputs_embeds=emb)
        out.append(logits[:, 0::2, d].float())  # [b, K] the y feature at x positions
    return torch.cat(out)


def regression_prior(info: dict[str, Any]) -> tuple[FiniteTaskPrior, GaussianPrior]:
    """The two closed-form priors of an ``icl-regression`` organism from its ``data_spec``."""
    spec = info["data_spec"]
    pool = FiniteTaskPrior.sample_pool(spec["n_tasks"], spec["d"], spec["noise"], spec["pool_seed"])
    if "pool_sha" in spec and _pool_sha(pool.tasks) != spec["pool_sha"]:
        raise MindscopeError("the task pool regenerated here differs from the organism's")
    return pool, GaussianPrior(spec["d"], spec["noise"])


def _pool_sha(tasks: torch.Tensor) -> str:
    return hashlib.sha256(tasks.contiguous().numpy().tobytes()).hexdigest()[:16]


def _check_regression(config: RegressionConfig) -> None:
    if config.n_tasks < 1:
        raise MindscopeError(f"the number of tasks M must be >= 1, got {config.n_tasks}")
    if not config.noise > 0:
        raise MindscopeError(f"the noise level must be positive, got {config.noise}")
    if 2 * config.k > config.shape.max_len:
        raise MindscopeError(
            f"K = {config.k} pairs need {2 * config.k} positions; max_len is {config.shape.max_len}"
        )


def regression_task(config: RegressionConfig) -> TrainingTask:
    """Model, batches (fresh contexts each step, tasks from the pool) and loss (mean squared
    error of the ``y`` predictions, divided by ``D``) of ``icl-regression``."""
    _check_regression(config)
    pool = FiniteTaskPrior.sample_pool(config.n_tasks, config.d, config.noise, config.pool_seed)
    model = build_model(config.shape, config.d + 2, config.d + 1, config.seed)
    std = config.noise**0.5

    def batches() -> Iterator[Batch]:
        gen = torch.Generator().manual_seed(config.seed + 7919)
        while True:
            x, y = sample_contexts(pool.sample(config.batch_size, gen), config.k, std, gen)
            yield {"tokens": encode_regression(x, y), "y": y}

    def loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        logits = train_logits(model, inputs_embeds=_embed(model, batch["tokens"]))  # type: ignore[arg-type]
        pred = logits[:, 0::2, config.d]  # [b, K]
        return F.mse_loss(pred, batch["y"]) / config.d

    return TrainingTask(model=model, batches=batches, loss=loss)


def train_regression(
    config: RegressionConfig, out: Path, progress: bool = True, observer: StepObserver | None = None
) -> TrainReport:
    """Train ``icl-regression`` with ``config``; each checkpoint records its mean squared error
    and that of dMMSE and ridge on held-out contexts from the pool, and its distance to both."""
    _check_regression(config)
    tok = _regression_tokenizer(config.d)
    prior = FiniteTaskPrior.sample_pool(config.n_tasks, config.d, config.noise, config.pool_seed)
    gen = torch.Generator().manual_seed(config.seed + 1_000_003)
    x, y = sample_contexts(
        prior.sample(config.eval_contexts, gen), config.k, config.noise**0.5, gen
    )
    dm, rg = predict(prior, x, y), predict(GaussianPrior(config.d, config.noise), x, y)
    with deterministic(config.seed, config.threads):
        task = regression_task(config)
        model = task.model
        writer = CheckpointWriter(out, tok)

        def on_checkpoint(step: int) -> dict[str, float]:
            p = regression_predictions(model, x, y)
            metrics = {
                "mse": float((p - y).square().mean()),
                "mse_dmmse": float((dm - y).square().mean()),
                "mse_ridge": float((rg - y).square().mean()),
                "dist_dmmse": float((p - dm).square().mean()),
                "dist_ridge": float((p - rg).square().mean()),
            }
            writer.save(step, model, metrics)
            return {k: metrics[k] for k in ("mse", "dist_dmmse", "dist_ridge")}

        train_loop(
            task,
            config.max_steps,
            config.optim,
            checkpoint_steps(config.max_steps, config.n_linear),
            on_checkpoint,
            desc=f"training icl-regression (M={config.n_tasks})",
            progress=progress,
            observer=observer,
        )
    final = writer.metrics[max(writer.metrics, key=lambda r: int(r[4:]))]
    return TrainReport(metrics=writer.metrics, info={"final_metrics": final})


def _regression_info(config: RegressionConfig) -> dict[str, Any]:
    pool = FiniteTaskPrior.sample_pool(config.n_tasks, config.d, config.noise, config.pool_seed)
    return {
        "task": "in-context linear regression with M pretraining tasks (Raventos et al. 2023)",
        "data_spec": {
            "kind": "regression",
            "d": config.d,
            "k": config.k,
            "noise": config.noise,
            "n_tasks": config.n_tasks,
            "pool_seed": config.pool_seed,
            "pool_sha": _pool_sha(pool.tasks),
            "features": config.d + 1,
        },
        "format": "tokens [n, 2K, D+1] (x_i at 2i as [x, 0], y_i at 2i+1 as [0, y]); "
        "inputs_embeds = tokens @ W_E[:D+1]; prediction of y_i = logits[:, 2i, D]",
        "bayes": "dMMSE (posterior mean over the pool) for pool tasks; ridge (lambda = s^2) for "
        "w ~ N(0, I)",
    }


def regression_spec(n_tasks: int = DEFAULT_TASKS) -> OrganismSpec:
    """The zoo entry of ``icl-regression`` (``n_tasks`` = its default) or
    ``icl-regression-m<n_tasks>``."""
    if not isinstance(n_tasks, int) or n_tasks < 1:
        raise MindscopeError(f"the number of tasks M must be an integer >= 1, got {n_tasks!r}")
    name = "icl-regression" if n_tasks == DEFAULT_TASKS else f"icl-regression-m{n_tasks}"
    return OrganismSpec(
        name=name,
        description=f"in-context linear regression, D=4, K=16, M={n_tasks} pretraining tasks",
        make_config=lambda seed: RegressionConfig(seed=seed, pool_seed=seed, n_tasks=n_tasks),
        train=train_regression,
        make_task=regression_task,
        static_info=_regression_info,
    )


def variant_tasks(name: str) -> int | None:
    """``M`` of an organism name ``icl-regression-m<M>`` (``None`` for any other name)."""
    m = _VARIANT.match(name)
    return int(m.group(1)) if m else None


REGRESSION_SPEC = regression_spec()


# --------------------------------------------------------------------------- HMM
def hmm_symbols(n: int) -> str:
    """The characters naming the symbols ``0 .. n-1``."""
    if not 2 <= n <= 26:
        raise MindscopeError(f"icl-hmm supports 2..26 symbols, got {n}")
    return "abcdefghijklmnopqrstuvwxyz"[:n]


def hmm_mixture(config_or_spec: Any, *, heldout: bool = False) -> HMMMixture:
    """The training mixture (or, ``heldout=True``, a mixture of as many HMMs never trained on)."""
    spec = config_or_spec if isinstance(config_or_spec, dict) else _hmm_spec(config_or_spec)
    seed = spec["hmm_seed"] + (1 if heldout else 0)
    hmms = random_hmms(
        spec["n_hmms"],
        spec["n_states"],
        spec["n_symbols"],
        seed,
        concentration=spec["concentration"],
    )
    return HMMMixture(hmms)


def _hmm_spec(config: HMMConfig) -> dict[str, Any]:
    return {
        "kind": "hmm",
        "n_hmms": config.n_hmms,
        "n_states": config.n_states,
        "n_symbols": config.n_symbols,
        "hmm_seed": config.hmm_seed,
        "concentration": config.concentration,
        "length": config.length,
        "symbols": hmm_symbols(config.n_symbols),
    }


def _hmm_tokenizer(n_symbols: int) -> Any:
    return to_hf(word_level_tokenizer([], hmm_symbols(n_symbols)))


def hmm_logprobs(
    model: Any, obs: torch.Tensor, n_symbols: int, batch_size: int = 512
) -> torch.Tensor:
    """The model's log-probabilities of every next symbol: ``[n, T, V]`` from ``obs [n, T]``.

    The input is ``[EOS, o_0, ..., o_{T-2}]`` (symbol ``i`` has token id ``i + 2`` in the
    organism's tokenizer); the log-softmax is over the whole vocabulary, so mass the model
    puts on non-symbols counts against it.
    """
    module = getattr(model, "model", model)
    vocab = module.get_input_embeddings().weight.shape[0]
    if vocab != n_symbols + 2:
        raise MindscopeError(
            f"the model has {vocab} tokens, the data spec needs {n_symbols} symbols + 2 specials"
        )
    n_ctx = getattr(module.config, "max_position_embeddings", None)
    if n_ctx is not None and obs.shape[1] > n_ctx:
        raise MindscopeError(f"sequences of {obs.shape[1]} tokens; the model has {n_ctx} positions")
    ids = torch.cat([torch.zeros(obs.shape[0], 1, dtype=torch.long), obs[:, :-1] + 2], 1)
    out = []
    for i in range(0, len(ids), batch_size):
        chunk = ids[i : i + batch_size]
        if hasattr(model, "forward") and hasattr(model, "embedding_matrix"):
            logits = model.forward(chunk)
        else:
            with torch.no_grad():
                logits = train_logits(module, chunk)
        out.append(torch.log_softmax(logits.float(), -1)[..., 2 : 2 + n_symbols])
    return torch.cat(out)


def hmm_task(config: HMMConfig) -> TrainingTask:
    """Model, batches (fresh sequences from the mixture each step) and next-token loss."""
    mix = hmm_mixture(config)
    if config.length > config.shape.max_len:
        raise MindscopeError(f"length {config.length} exceeds max_len {config.shape.max_len}")
    model = build_model(config.shape, config.n_symbols + 2, 0, config.seed)

    def batches() -> Iterator[Batch]:
        gen = torch.Generator().manual_seed(config.seed + 7919)
        while True:
            obs, _, _ = mix.sample(config.batch_size, config.length, gen)
            ids = torch.cat([torch.zeros(config.batch_size, 1, dtype=torch.long), obs + 2], 1)
            yield {"ids": ids}  # [b, T + 1]

    def loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        ids = batch["ids"]
        logits = train_logits(model, ids[:, :-1])  # type: ignore[arg-type]  # [b, T, vocab]
        return F.cross_entropy(logits.transpose(1, 2), ids[:, 1:])

    return TrainingTask(model=model, batches=batches, loss=loss)


def train_hmm(
    config: HMMConfig, out: Path, progress: bool = True, observer: StepObserver | None = None
) -> TrainReport:
    """Train ``icl-hmm``; each checkpoint records the mean next-token KL to the Bayes
    predictive of the training mixture (after the first 4 tokens and overall)."""
    mix = hmm_mixture(config)
    gen = torch.Generator().manual_seed(config.seed + 1_000_003)
    obs, _, _ = mix.sample(config.eval_sequences, config.length, gen)
    _, bayes = mix.forward(obs)
    with deterministic(config.seed, config.threads):
        task = hmm_task(config)
        model = task.model
        writer = CheckpointWriter(out, _hmm_tokenizer(config.n_symbols))

        def on_checkpoint(step: int) -> dict[str, float]:
            kl = kl_to_bayes(bayes, hmm_logprobs(model, obs, config.n_symbols))  # [n, T]
            metrics = {"kl_bayes": float(kl.mean()), "kl_bayes_after4": float(kl[:, 4:].mean())}
            writer.save(step, model, metrics)
            return metrics

        train_loop(
            task,
            config.max_steps,
            config.optim,
            checkpoint_steps(config.max_steps, config.n_linear),
            on_checkpoint,
            desc="training icl-hmm",
            progress=progress,
            observer=observer,
        )
    final = writer.metrics[max(writer.metrics, key=lambda r: int(r[4:]))]
    return TrainReport(metrics=writer.metrics, info={"final_metrics": final})


def _hmm_info(config: HMMConfig) -> dict[str, Any]:
    return {
        "task": "next symbol of a sequence from a mixture of HMMs (GINC-style, Xie et al. 2021)",
        "data_spec": _hmm_spec(config),
        "format": "ids [EOS, o_0, ..., o_{T-2}], symbol i = token id i + 2 (character "
        "symbols[i]); the output at position t predicts o_t",
        "bayes": "forward algorithm over (HMM, hidden state) of the training mixture",
    }


HMM_SPEC = OrganismSpec(
    name="icl-hmm",
    description="next symbol of sequences from a mixture of 4 random 3-state HMMs (GINC-style)",
    make_config=lambda seed: HMMConfig(seed=seed, hmm_seed=seed),
    train=train_hmm,
    make_task=hmm_task,
    static_info=_hmm_info,
)
