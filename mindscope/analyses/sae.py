"""The SAE stage: train sparse autoencoders at one or several sites of a model in one streaming
pass, score them (L0, variance explained, dead and dense fractions, shrinkage) and splice each
into the forward pass to measure the loss it recovers (CE and KL, against zero- and
mean-ablation of the site).

One function serves ``mindscope sae train``, ``mindscope run`` (``sae:``), ``mindscope sweep``
and the Python API::

    out = ms.analyses.run_stage("sae", h, {"sites": ["resid_post.2"], "archs": ["topk"]})
    out.artefacts["sae-resid_post.2-topk"](folder)      # config.json + model.safetensors

Any handle works: a language model (inputs are token windows of the texts) or a
:class:`~mindscope.models.HookedModule` with ``inputs`` given to :func:`train_saes` directly.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from mindscope.analyses.base import (
    Artefact,
    CheckContext,
    StageConfig,
    StageOutput,
    json_artefact,
    register,
)
from mindscope.analyses.checks import check_file
from mindscope.errors import MindscopeError
from mindscope.results import Row

__all__ = ["SaeConfig", "sae_stage", "train_saes", "loss_recovered"]

log = logging.getLogger("mindscope.analyses")


class SaeConfig(StageConfig):
    """Sparse autoencoders trained at model sites and scored."""

    sites: list[str] = Field(
        default_factory=lambda: ["resid_post.-2"],
        description="Sites to train on, all in the same pass (``resid_post.2``, ``mlp_out.1``, "
        "negative layers count from the end).",
    )
    archs: list[str] = Field(
        default_factory=lambda: ["topk"],
        description="Architectures: any of ``topk``, ``batchtopk``, ``jumprelu``, ``l1``, "
        "``matryoshka``.",
    )
    transcoders: list[str] = Field(
        default_factory=list,
        description="Transcoders trained in the same pass, ``input->output`` site pairs "
        "(``resid_post.1->mlp_out.2``): latents read the input site, the decoder predicts the "
        "output site, which is where the loss recovered splices the prediction in.",
    )
    expansion: float = Field(default=8.0, description="Latents per activation dimension.")
    n_latents: int | None = Field(
        default=None, description="Dictionary width; null: ``expansion * d_model``."
    )
    k: int = Field(default=16, description="Target L0 (active latents per token).")
    steps: int = Field(default=1000, description="Optimiser steps.")
    batch_size: int = Field(default=1024, description="Tokens per step.")
    lr: float | None = Field(
        default=None, description="Learning rate; null: 2e-4 * sqrt(16384 / n_latents)."
    )
    dead_tokens: int = Field(
        default=100_000, description="Tokens without firing after which a latent is dead (AuxK)."
    )
    train_text: str | None = Field(
        default=None,
        description='Training texts (JSONL with "text" or blank-line separated); null: the '
        "organism corpus.",
    )
    eval_text: str | None = Field(
        default=None, description="Evaluation texts; null: the corpus's held-out split."
    )
    seq_len: int = Field(default=64, description="Tokens per window.")
    buffer_windows: int = Field(
        default=64, description="Windows run per buffer (memory: their activations)."
    )
    eval_windows: int = Field(default=64, description="Held-out windows scored.")
    loss_recovered: bool = Field(
        default=True, description="Splice each SAE in and measure the CE/KL loss it recovers."
    )
    feature_cards: int = Field(
        default=0,
        description="Write a feature card (top contexts, logit effect, activation histogram) "
        "for this many of each SAE's most often firing latents (artefact "
        "``sae-<site>-<arch>-features.json``).",
    )
    checkpoint: str | None = Field(
        default=None,
        description="Folder for resumable training state (a killed run picks up from it).",
    )

    def check(self, ctx: CheckContext, where: str) -> SaeConfig:
        """Architectures, sizes and files."""
        from mindscope.sae import ARCHITECTURES

        e = self.model_copy(deep=True)
        for i, arch in enumerate(e.archs):
            if arch not in ARCHITECTURES:
                raise e.fail(
                    ctx,
                    f"{where}.archs[{i}]",
                    f"unknown architecture {arch!r} (known: {', '.join(ARCHITECTURES)})",
                )
        if not e.archs or not (e.sites or e.transcoders):
            raise e.fail(ctx, where, "give at least one site and one architecture")
        for i, pair in enumerate(e.transcoders):
            if len(pair.split("->")) != 2 or not all(p.strip() for p in pair.split("->")):
                raise e.fail(
                    ctx,
                    f"{where}.transcoders[{i}]",
                    f"{pair!r} is not 'input_site->output_site'",
                )
        for key, low in (
            ("k", 1),
            ("steps", 1),
            ("batch_size", 1),
            ("seq_len", 2),
            ("buffer_windows", 1),
            ("eval_windows", 1),
        ):
            if getattr(e, key) < low:
                raise e.fail(ctx, f"{where}.{key}", f"must be >= {low}, got {getattr(e, key)}")
        if e.n_latents is not None and e.n_latents < 1:
            raise e.fail(ctx, f"{where}.n_latents", "a dictionary of zero width has no latents")
        if e.n_latents is not None and e.k > e.n_latents:
            raise e.fail(
                ctx, f"{where}.k", f"k={e.k} active latents cannot be met by {e.n_latents} latents"
            )
        if not e.expansion > 0:
            raise e.fail(ctx, f"{where}.expansion", f"must be > 0, got {e.expansion}")
        e.train_text = check_file(e.train_text, f"{where}.train_text", ctx.base, ctx.prefix)
        e.eval_text = check_file(e.eval_text, f"{where}.eval_text", ctx.base, ctx.prefix)
        return e


def _texts(cfg: SaeConfig) -> tuple[list[str], list[str], str]:
    from mindscope.lenses import read_texts

    if cfg.train_text:
        train = read_texts(cfg.train_text)
        if cfg.eval_text:
            held = read_texts(cfg.eval_text)
        else:
            cut = max(1, len(train) // 10)
            train, held = train[:-cut] or train, train[-cut:]
        return train, held, Path(cfg.eval_text or cfg.train_text).stem
    from mindscope import organisms

    train = list(organisms.pocket_corpus("train"))
    held = read_texts(cfg.eval_text) if cfg.eval_text else list(organisms.pocket_corpus("heldout"))
    return train, held, "pocket-corpus"


def train_saes(
    hm: Any,
    inputs: Any,
    sites: Sequence[Any],
    archs: Sequence[str],
    *,
    n_latents: int,
    k: int,
    steps: int,
    batch_size: int,
    lr: float | None = None,
    dead_tokens: int = 100_000,
    buffer_inputs: int = 64,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    progress: bool = False,
    source: Any = None,
    transcoders: Sequence[tuple[Any, Any]] = (),
) -> dict[tuple[Any, str], Any]:
    """Train one SAE per (site, architecture) on activations of ``hm`` streamed from
    ``inputs [n, ...]`` (one model pass per buffer serves every site).

    Args:
        source: instead of ``hm`` and ``inputs``, a step -> ``{site: [batch, d]}`` function
            (:func:`mindscope.sae.store_source` reads the activation store; ``sites`` are then
            its keys, e.g. store layers); ``hm`` and ``inputs`` are ignored.
        transcoders: ``(input_site, output_site)`` pairs: one transcoder per pair and
            architecture (latents read the first site, the decoder predicts the second), keyed
            ``("<input>-><output>", arch)``, trained in the same pass as the SAEs.

    Returns:
        ``{(site, arch): fitted SparseAutoencoder}``. With ``checkpoint``, each SAE's state is
        written under ``checkpoint/<site>/<arch>`` every 100 steps and read back on restart.
    """
    from tqdm.auto import tqdm

    from mindscope.sae import activation_source, make_sae

    pairs = {f"{a}->{b}": (a, b) for a, b in transcoders}
    if source is None:
        read = list(dict.fromkeys([*sites, *(s for pair in pairs.values() for s in pair)]))
        source = activation_source(
            hm, inputs, read, batch_size=batch_size, buffer_inputs=buffer_inputs, seed=seed
        )
    saes = {
        (s, a): make_sae(
            a,
            n_latents,
            k,
            n_steps=steps,
            batch_size=batch_size,
            lr=lr,
            dead_tokens=dead_tokens,
            seed=seed,
        )
        for s in [*sites, *pairs]
        for a in archs
    }
    folders = {key: Path(checkpoint) / str(key[0]) / key[1] for key in saes} if checkpoint else {}
    start = 0
    for key, model in saes.items():
        if key in folders and (folders[key] / "state.json").is_file():
            model.load_state(folders[key])
    if folders:
        done = {m.step_ if m.is_fitted else 0 for m in saes.values()}
        if len(done) != 1:
            raise MindscopeError(f"checkpoints under {checkpoint} are at different steps {done}")
        start = done.pop()
    for step in tqdm(range(start, steps), desc="sae", disable=not progress, unit="step"):
        batch = source(step)
        for (site, _), model in saes.items():
            if site in pairs:
                model.partial_fit(batch[pairs[site][0]], batch[pairs[site][1]])
            else:
                model.partial_fit(batch[site])
        if folders and ((step + 1) % 100 == 0 or step + 1 == steps):
            for key, model in saes.items():
                model.save_state(folders[key])
    return saes


def loss_recovered(
    h: Any,
    site: str,
    sae: Any,
    windows: Any,
    mean: Any,
    *,
    batch: int = 16,
    source_site: str | None = None,
) -> dict[str, float]:
    """CE and KL of ``h`` on token ``windows [n, seq_len]`` with ``site`` replaced by the SAE's
    reconstruction, by zeros and by ``mean [d_model]``; the loss recovered against each ablation
    is ``(CE_abl - CE_sae) / (CE_abl - CE_clean)`` (and ``1 - KL_sae / KL_abl``).

    Args:
        source_site: for a transcoder, the (earlier) site its latents read; ``site`` is then
            replaced by its prediction from that site's activation in the same pass.
    """
    import torch
    import torch.nn.functional as F

    seen: dict[str, Any] = {}

    def splice(t: Any) -> Any:
        shape = t.shape
        src = seen.pop("x") if source_site is not None else t
        flat = src.reshape(-1, src.shape[-1]).float()  # [batch * pos, d_in]
        return sae.reconstruct(flat).reshape(*shape[:-1], -1)

    def remember(t: Any) -> Any:
        seen["x"] = t
        return t

    sae_patch = {site: splice} if source_site is None else {source_site: remember, site: splice}
    fns: dict[str, dict[str, Any]] = {
        "sae": sae_patch,
        "zero": {site: torch.zeros_like},
        "mean": {site: lambda t: mean.to(t).expand_as(t).clone()},
    }
    ce = {name: 0.0 for name in ["clean", *fns]}
    kl = dict.fromkeys(fns, 0.0)
    count = 0
    for i in range(0, len(windows), batch):
        ids = windows[i : i + batch]
        clean = h.forward(ids).float().log_softmax(-1)[:, :-1]  # [b, pos-1, vocab]
        target = ids[:, 1:].to(clean.device)
        n = target.numel()
        ce["clean"] += float(F.nll_loss(clean.flatten(0, 1), target.flatten(), reduction="sum"))
        for name, patches in fns.items():
            with h.patch(patches):
                lp = h.forward(ids).float().log_softmax(-1)[:, :-1]
            ce[name] += float(F.nll_loss(lp.flatten(0, 1), target.flatten(), reduction="sum"))
            kl[name] += float((clean.exp() * (clean - lp)).sum())
        count += n
    out = {f"ce_{k}": v / count for k, v in ce.items()}
    out.update({f"kl_{k}": v / count for k, v in kl.items()})
    for abl in ("zero", "mean"):
        gap = out[f"ce_{abl}"] - out["ce_clean"]
        out[f"ce_recovered_{abl}"] = (out[f"ce_{abl}"] - out["ce_sae"]) / gap if gap else 0.0
        out[f"kl_recovered_{abl}"] = (
            1 - out["kl_sae"] / out[f"kl_{abl}"] if out[f"kl_{abl}"] else 0.0
        )
    return out


def _card_row(card: dict[str, Any], arch: str, dataset: str, n: int, extra: dict[str, Any]) -> Row:
    """A feature card as one results row (metric ``feature_fire_rate``): the report's feature
    pages read the card (top contexts, logit effect, histogram) from its ``extra``."""
    return Row(
        metric="feature_fire_rate",
        value=float(card["histogram"]["fire_rate"]),
        method=f"sae:{arch}",
        layer=_layer(card["site"]),
        dataset=dataset,
        split="heldout",
        n=n,
        _extra={
            **extra,
            "latent": int(card["latent"]),
            "contexts": [[c["activation"], c["context"]] for c in card["contexts"]],
            "promoted": card["logit_effect"]["promoted"],
            "suppressed": card["logit_effect"]["suppressed"],
            "hist_edges": card["histogram"]["edges"],
            "hist_counts": card["histogram"]["counts"],
        },
    )


def _layer(site: str) -> int:
    tail = site.rsplit(".", 1)[-1]
    return int(tail) if tail.lstrip("-").isdigit() else -1


@register(
    "sae",
    SaeConfig,
    help="sparse autoencoders at model sites: reconstruction, sparsity, dead latents, "
    "loss recovered",
    order=65,
)
def sae_stage(
    h: Any,
    cfg: SaeConfig,
    *,
    seed: int = 0,
    progress: bool = False,
    state: dict[str, Any] | None = None,
    store: str | None = None,
) -> StageOutput:
    """Train and score the configured SAEs on ``h``; rows per (site, architecture) and
    artefacts ``sae-<site>-<arch>/`` (saved with the model's weights hash and the site)."""
    from mindscope.io import hash_bytes
    from mindscope.results import to_frame
    from mindscope.sae import reconstruction_metrics, site_activations, token_windows

    train, held, data_name = _texts(cfg)
    sites = [h.canonical_site(s) for s in cfg.sites]
    for t in cfg.transcoders:
        if len(t.split("->")) != 2:
            raise MindscopeError(f"sae.transcoders: {t!r} is not 'input_site->output_site'")
    pairs = [
        (h.canonical_site(a.strip()), h.canonical_site(b.strip()))
        for a, b in (t.split("->") for t in cfg.transcoders)
    ]
    read = list(dict.fromkeys([*sites, *(s for pair in pairs for s in pair)]))
    n_ctx = getattr(h, "n_ctx", None)
    if n_ctx is not None and cfg.seq_len > n_ctx:
        raise MindscopeError(
            f"sae.seq_len: {cfg.seq_len} is longer than {h.name}'s context of {n_ctx}"
        )
    windows = token_windows(h, train, cfg.seq_len)
    eval_windows = token_windows(h, held, cfg.seq_len)[: cfg.eval_windows]
    n_latents = cfg.n_latents or max(1, round(cfg.expansion * h.d_model))
    if cfg.k > n_latents:
        raise MindscopeError(
            f"sae.k: k={cfg.k} active latents cannot be met by {n_latents} latents"
        )
    saes = train_saes(
        h,
        windows,
        sites,
        cfg.archs,
        n_latents=n_latents,
        k=cfg.k,
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        dead_tokens=cfg.dead_tokens,
        buffer_inputs=cfg.buffer_windows,
        seed=seed,
        checkpoint=cfg.checkpoint,
        progress=progress,
        transcoders=pairs,
    )
    acts = site_activations(h, eval_windows, read)
    means = {
        s: a.mean(0) for s, a in site_activations(h, windows[: cfg.buffer_windows], read).items()
    }
    by_name = {f"{a}->{b}": (a, b) for a, b in pairs}
    rows: list[Row] = []
    artefacts: dict[str, Artefact] = {}
    info: dict[str, Any] = {
        "n_latents": n_latents,
        "train_windows": len(windows),
        "eval_tokens": int(len(eval_windows) * cfg.seq_len),
    }
    for (site, arch), model in saes.items():
        src, out = by_name.get(site, (site, site))  # a transcoder reads src and predicts out
        x = acts[src]
        z = model.transform(x)
        metrics = reconstruction_metrics(acts[out], model.reconstruct(x), z)
        if cfg.loss_recovered:
            metrics.update(
                loss_recovered(
                    h,
                    out,
                    model,
                    eval_windows,
                    means[out],
                    source_site=src if site in by_name else None,
                )
            )
        if abs(metrics["l0"] - cfg.k) > 0.5 * cfg.k:
            msg = (
                f"{arch} at {site}: held-out L0 {metrics['l0']:.1f} is far from the target "
                f"k={cfg.k} (train longer, or compare architectures at the L0 reached)"
            )
            log.warning("%s", msg)
            info.setdefault("warnings", []).append(msg)
        extra = {"site": site, "arch": arch, "k": cfg.k, "n_latents": n_latents}
        for metric, value in metrics.items():
            rows.append(
                Row(
                    metric=metric,
                    value=float(value),
                    method=f"sae:{arch}",
                    layer=_layer(out),
                    dataset=data_name,
                    split="heldout",
                    n=len(x),
                    _extra=extra,
                )
            )
        if cfg.feature_cards > 0:
            from mindscope.sae import feature_card

            freq = (z > 0).sum(0)  # [n_latents]
            picked = freq.argsort(descending=True)[: cfg.feature_cards].tolist()
            cards = [feature_card(h, model, src, eval_windows, j) for j in picked if freq[j] > 0]
            artefacts[f"sae-{site}-{arch}-features.json"] = json_artefact(cards)
            rows += [_card_row(card, arch, data_name, len(x), extra) for card in cards]
        meta = {"model": h.name, "weights_hash": h.weights_hash, "site": site}
        artefacts[f"sae-{site}-{arch}"] = functools.partial(model.save, meta=meta)
    data = {
        f"sae-train:{data_name}": hash_bytes(windows.numpy().tobytes()),
        f"sae-eval:{data_name}": hash_bytes(eval_windows.numpy().tobytes()),
    }
    return StageOutput(rows=to_frame(rows), artefacts=artefacts, data=data, info=info)
