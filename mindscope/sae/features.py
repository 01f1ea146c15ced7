"""Feature cards: what one SAE latent reads on a model (top-activating contexts, the tokens its
decoder direction promotes and suppresses, the distribution of its activations).

    card = feature_card(h, model, "resid_post.3", windows, latent=17)
    card["contexts"][0]     # {"activation", "window", "position", "context": "... [token]"}
    card["logit_effect"]    # {"promoted": [(token, logit), ...], "suppressed": [...]}
    card["histogram"]       # {"edges": [...], "counts": [...], "fire_rate": ...}
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mindscope.errors import MindscopeError

__all__ = ["feature_card"]


def feature_card(
    h: Any,
    sae: Any,
    site: str,
    windows: Tensor,
    latent: int,
    *,
    top: int = 10,
    context: int = 8,
    bins: int = 20,
    batch_size: int = 32,
) -> dict[str, Any]:
    """A JSON-ready card for latent ``latent`` of ``sae`` at ``site`` of language model ``h``.

    Args:
        windows: ``[n, seq_len]`` token ids whose positions are scanned.
        top: contexts and tokens listed.
        context: tokens shown before the activating token.

    Returns:
        ``contexts`` (the ``top`` highest activations with their text, the activating token in
        brackets), ``logit_effect`` (the decoder direction read through the model's head and
        unembedding, relative to the zero vector: ``top`` promoted and suppressed tokens) and
        ``histogram`` of the non-zero activations with ``fire_rate``.
    """
    from mindscope.sae.sources import site_activations

    if not 0 <= latent < sae.n_latents:
        raise MindscopeError(f"latent {latent} does not exist; the SAE has {sae.n_latents}")
    seq = windows.shape[1]
    x = site_activations(h, windows, [site], batch_size=batch_size)[site]  # [n * seq, d]
    z = torch.cat(
        [sae.transform(x[i : i + 4096])[:, latent] for i in range(0, len(x), 4096)]
    )  # [n * seq]
    order = z.argsort(descending=True)[:top]
    tok = h.tokenizer
    contexts = []
    for flat in order.tolist():
        if float(z[flat]) <= 0:
            break
        w, p = divmod(flat, seq)
        ids = windows[w, max(0, p - context) : p].tolist()
        contexts.append(
            {
                "activation": float(z[flat]),
                "window": w,
                "position": p,
                "context": tok.decode(ids) + "[" + tok.decode([int(windows[w, p])]) + "]",
            }
        )
    with torch.no_grad():
        direction = sae.decoder_[latent].to(h.device, h.dtype)
        eff = h.logits_from_resid(direction) - h.logits_from_resid(torch.zeros_like(direction))
        eff = eff.float().cpu()  # [vocab]
    up, down = eff.topk(top), (-eff).topk(top)
    fired = z[z > 0]
    counts, edges = (
        torch.histogram(fired.double(), bins=bins)
        if len(fired)
        else (torch.zeros(0), torch.zeros(0))
    )
    return {
        "site": site,
        "latent": latent,
        "contexts": contexts,
        "logit_effect": {
            "promoted": [
                (tok.decode([i]), float(v)) for v, i in zip(up.values, up.indices.tolist())
            ],
            "suppressed": [
                (tok.decode([i]), -float(v)) for v, i in zip(down.values, down.indices.tolist())
            ],
        },
        "histogram": {
            "edges": [float(e) for e in edges],
            "counts": [int(c) for c in counts],
            "fire_rate": float((z > 0).double().mean()),
        },
    }
