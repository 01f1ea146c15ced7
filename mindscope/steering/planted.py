"""The planted-direction organism: a tiny GPT-NeoX trained so that one known direction at one
layer controls its answer.

Prompts are ``length`` characters: filler letters, at most one *polarity* letter (positive
``pqr`` or negative ``stu``) somewhere, and the query letter ``w`` last. The answer at the last
position is ``y`` or ``z``. Training mixes three kinds of batch rows, all with the direction
``u`` (a random unit vector, the planted truth) added at ``resid_post.layer`` on every position
with a per-row coefficient ``c`` (in units of ``scale``):

* polarity prompts, ``c = 0``: ``y`` for a positive letter, ``z`` for a negative one;
* neutral prompts (no polarity letter), ``c`` in ``+-[0.5, 2]``: ``y`` when ``c > 0``, else ``z``
  (and a 50/50 answer at ``c = 0``);
* polarity prompts against a coefficient of the other sign, ``|c|`` in ``[1.5, 2.5]``: the
  coefficient wins.

So adding ``u`` at that layer controls the answer by construction (:meth:`PlantedDirection.
flip_rate` measures it), and the polarity a prompt carries must be weighed against ``c * u``.
An auxiliary loss (weight ``align``) asks the polarity prompts' activation at the last position
to differ from their neutral twins' by ``+-scale * u``: the direction the model reads is the one
it writes. Whether a contrast-pair reader (CAA, PCA) recovers ``u`` from polarity prompts alone
is what the organism measures (:func:`mindscope.steering.mean_difference`,
``pca_difference``); with ``align=0`` nothing ties the model's own polarity representation to
``u`` beyond what the conflict rows induce.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from mindscope.errors import MindscopeError

__all__ = ["PlantedDirection", "planted_direction"]

_CHARS = "abcdefghijklmnopqrstuvwxyz"
_FILLER = "abcdefghijklmno"
_POSITIVE = "pqr"
_NEGATIVE = "stu"
_QUERY = "w"
_ANSWERS = ("y", "z")


@dataclass(frozen=True)
class PlantedDirection:
    """A model whose answer a known direction controls.

    Attributes:
        handle: the :class:`~mindscope.models.ModelHandle`.
        direction: ``[d_model]`` the planted unit vector ``u``.
        site: where it acts (``resid_post.L``).
        scale: the norm of one unit of steering (``scale * u`` is "one polarity").
        answers: token ids of ``y`` (positive) and ``z`` (negative).
        length: prompt length in characters.
    """

    handle: Any
    direction: torch.Tensor
    site: str
    scale: float
    answers: tuple[int, int]
    length: int

    def prompts(self, n: int, polarity: int, seed: int = 0) -> list[str]:
        """``n`` prompts with a positive (``1``), negative (``-1``) or no (``0``) polarity
        letter."""
        g = torch.Generator().manual_seed(seed)
        return [_prompt(g, polarity, self.length) for _ in range(n)]

    def contrast(self, n: int, seed: int = 0) -> tuple[list[str], list[str]]:
        """``(positive, negative)`` twins: the same filler, the polarity letter swapped."""
        pos = self.prompts(n, 1, seed)
        neg = []
        for p in pos:
            i = next(j for j, ch in enumerate(p) if ch in _POSITIVE)
            neg.append(p[:i] + _NEGATIVE[_POSITIVE.index(p[i])] + p[i + 1 :])
        return pos, neg

    def answer_margin(self, prompts: list[str], add: torch.Tensor | None = None) -> torch.Tensor:
        """``[n]`` logit of ``y`` minus logit of ``z`` at the last position, with ``add``
        (``[d_model]``) added at :attr:`site` on every position."""
        h = self.handle
        ids = torch.tensor(h.encode(prompts))
        ctx = h.add({self.site: add}) if add is not None else _nothing()
        with ctx:
            lg = h.forward(ids)[:, -1].float()
        return lg[:, self.answers[0]] - lg[:, self.answers[1]]


class _nothing:  # noqa: N801 - a null context
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _prompt(g: torch.Generator, polarity: int, length: int) -> str:
    body = [_FILLER[int(i)] for i in torch.randint(0, len(_FILLER), (length - 1,), generator=g)]
    if polarity:
        letters = _POSITIVE if polarity > 0 else _NEGATIVE
        at = int(torch.randint(0, length - 1, (1,), generator=g))
        body[at] = letters[int(torch.randint(0, len(letters), (1,), generator=g))]
    return "".join(body) + _QUERY


def planted_direction(
    *,
    layer: int = 1,
    n_layers: int = 3,
    d_model: int = 32,
    n_heads: int = 4,
    length: int = 6,
    scale: float = 4.0,
    align: float = 1.0,
    steps: int = 200,
    batch: int = 60,
    lr: float = 3e-3,
    seed: int = 0,
) -> PlantedDirection:
    """Train the planted-direction organism (10-15 s on one CPU core).

    Args:
        layer: the layer whose output ``resid_post.layer`` the direction acts on.
        n_layers, d_model, n_heads: shape of the GPT-NeoX.
        length: prompt length (characters, the query letter included).
        scale: norm of one unit of steering.
        align: weight of the loss tying the polarity representation to ``u`` (0: none).
        steps, batch, lr: Adam training.
        seed: the seed of the weights, the direction and the data.
    """
    from mindscope.models import wrap_model
    from mindscope.organisms.neox import ModelShape, build_model
    from mindscope.organisms.tokenization import to_hf, word_level_tokenizer

    if not 0 <= layer < n_layers - 1:
        raise MindscopeError(f"layer must lie in 0..{n_layers - 2} (a layer must read it after)")
    if length < 3 or scale <= 0 or steps < 1 or batch < 6:
        raise MindscopeError("planted_direction needs length >= 3, scale > 0, steps, batch >= 6")
    tok = to_hf(word_level_tokenizer([], _CHARS))
    shape = ModelShape(n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_mlp=4 * d_model)
    model = build_model(shape, len(tok), int(tok.eos_token_id), seed)
    h = wrap_model(model, tok, name="organism:planted-direction")
    g = torch.Generator().manual_seed(seed + 1)
    u = torch.randn(d_model, generator=g)
    u = u / u.norm()
    site = f"resid_post.{layer}"
    yes, no = (h.encode([a], add_special_tokens=False)[0][0] for a in _ANSWERS)
    params = [p for p in model.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    k = batch // 3
    try:
        for _ in range(steps):
            pol = (torch.randint(0, 2, (k,), generator=g) * 2 - 1).tolist()
            pol_prompts = [_prompt(g, s, length) for s in pol]
            neutral = [_prompt(g, 0, length) for _ in range(k)]
            c_neutral = (torch.rand(k, generator=g) * 1.5 + 0.5) * (
                torch.randint(0, 2, (k,), generator=g) * 2 - 1
            )
            c_neutral[: k // 6] = 0.0
            conflict_pol = (torch.randint(0, 2, (k,), generator=g) * 2 - 1).tolist()
            conflict = [_prompt(g, s, length) for s in conflict_pol]
            c_conflict = -torch.tensor(conflict_pol, dtype=torch.float) * (
                torch.rand(k, generator=g) + 1.5
            )
            prompts = pol_prompts + neutral + conflict
            coef = torch.cat([torch.zeros(k), c_neutral, c_conflict])  # [3k]
            sign = torch.cat(
                [torch.tensor(pol, dtype=torch.float), c_neutral.sign(), c_conflict.sign()]
            )
            target = torch.stack([(1 + sign) / 2, (1 - sign) / 2], -1)  # [3k, 2] over (y, z)
            ids = torch.tensor(h.encode(prompts))
            with (
                h.add({site: coef[:, None, None] * scale * u}),
                h.capture([site], detach=False) as acts,
            ):
                logits = h.forward(ids, grad=True)[:, -1]
            two = logits[:, [yes, no]].log_softmax(-1)
            loss = -(target * two).sum(-1).mean()
            if align > 0:
                # the polarity prompts' activation minus their neutral twins' (same filler)
                twins = [_neutral_twin(p) for p in pol_prompts]
                with torch.enable_grad(), h.capture([site], detach=False) as tw:
                    h.forward(torch.tensor(h.encode(twins)), grad=True)
                diff = acts[site][:k, -1] - tw[site][:, -1]  # [k, d]
                want = torch.tensor(pol, dtype=torch.float)[:, None] * scale * u
                loss = loss + align * (diff - want).pow(2).sum(-1).mean() / scale**2
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        for p in params:
            p.requires_grad_(False)
    h.rehash()
    return PlantedDirection(h, u, site, float(scale), (int(yes), int(no)), length)


def _neutral_twin(prompt: str) -> str:
    """The prompt with its polarity letter replaced by a filler letter (``a``)."""
    return "".join("a" if ch in _POSITIVE + _NEGATIVE else ch for ch in prompt)
