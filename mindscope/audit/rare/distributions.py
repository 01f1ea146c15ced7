"""Input distributions: fixed-length token sequences, independent per position.

An :class:`InputDistribution` is a table ``probs [n_positions, vocab]`` (row ``i`` is the
distribution of the ``i``-th free token) plus a fixed ``prefix`` and ``suffix`` of token ids. A
sample is ``prefix + x + suffix`` with ``x_i ~ probs[i]`` independently. Small ones can be
enumerated exactly (every input with its probability).

    d = InputDistribution.uniform(range(64), n_positions=4, vocab_size=2049)
    x = d.sample(1024, generator=torch.Generator().manual_seed(0))   # [1024, 4]
    d.log_prob(x)                                                      # [1024]
    d.full(x)                                           # [1024, prefix + 4 + suffix]
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from mindscope import io
from mindscope.errors import MindscopeError

__all__ = [
    "InputDistribution",
    "token_set",
    "zipf_unigram",
    "from_spec",
    "describe_spec",
    "WEIGHTS",
]

Table = Mapping[int, float] | Sequence[float] | Sequence[int] | torch.Tensor


def _check_ids(ids: Sequence[int], vocab_size: int, what: str) -> tuple[int, ...]:
    out = tuple(int(i) for i in ids)
    bad = [i for i in out if not 0 <= i < vocab_size]
    if bad:
        raise MindscopeError(
            f"{what} has token ids outside the vocabulary [0, {vocab_size}): {bad[:5]}"
        )
    return out


def _row(table: Table, vocab_size: int, what: str) -> torch.Tensor:
    """One position's table -> normalised probabilities ``[vocab]`` (float64)."""
    row = torch.zeros(vocab_size, dtype=torch.float64)
    if isinstance(table, Mapping):
        ids = _check_ids(list(table), vocab_size, what)
        for i, w in zip(ids, table.values(), strict=True):
            row[i] += float(w)
    elif isinstance(table, torch.Tensor) and table.is_floating_point():
        if table.shape != (vocab_size,):
            raise MindscopeError(f"{what} has shape {tuple(table.shape)}, expected ({vocab_size},)")
        row = table.detach().to(torch.float64).cpu().clone()
    else:
        seq = list(table.tolist() if isinstance(table, torch.Tensor) else table)
        if seq and all(isinstance(v, float) for v in seq):
            if len(seq) != vocab_size:
                raise MindscopeError(f"{what} has {len(seq)} weights, the vocabulary {vocab_size}")
            row = torch.tensor(seq, dtype=torch.float64)
        else:  # a list of token ids: uniform over them
            ids = _check_ids(seq, vocab_size, what)
            if len(set(ids)) != len(ids):
                raise MindscopeError(f"{what} lists a token id twice")
            row[list(ids)] = 1.0
    if not torch.isfinite(row).all():
        raise MindscopeError(f"{what} has non-finite weights")
    if (row < 0).any():
        raise MindscopeError(f"{what} has negative weights (token {int((row < 0).nonzero()[0])})")
    total = float(row.sum())
    if total <= 0:
        raise MindscopeError(f"{what} has an empty support: no token with positive weight")
    return row / total


@dataclass(frozen=True)
class InputDistribution:
    """Independent per-position token distribution with a fixed prefix and suffix.

    Attributes:
        probs: ``[n_positions, vocab]`` float64, each row non-negative and summing to 1.
        prefix: token ids written before the free positions.
        suffix: token ids written after them (the bad output is read at the last token).
    """

    probs: torch.Tensor
    prefix: tuple[int, ...] = ()
    suffix: tuple[int, ...] = ()
    _log: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        p = self.probs
        if p.ndim != 2 or p.shape[0] < 1:
            raise MindscopeError(f"probs must be [n_positions >= 1, vocab], got {tuple(p.shape)}")
        rows = [_row(p[i], p.shape[1], f"position {i}") for i in range(p.shape[0])]
        object.__setattr__(self, "probs", torch.stack(rows))
        v = p.shape[1]
        object.__setattr__(self, "prefix", _check_ids(self.prefix, v, "prefix"))
        object.__setattr__(self, "suffix", _check_ids(self.suffix, v, "suffix"))
        object.__setattr__(self, "_log", self.probs.log())

    # ------------------------------------------------------------ constructors
    @classmethod
    def uniform(
        cls,
        tokens: Sequence[int] | range,
        n_positions: int,
        vocab_size: int,
        *,
        prefix: Sequence[int] = (),
        suffix: Sequence[int] = (),
    ) -> InputDistribution:
        """Every free position uniform over ``tokens``."""
        if n_positions < 1:
            raise MindscopeError(f"n_positions must be >= 1, got {n_positions}")
        row = _row(list(tokens), vocab_size, "token subset")
        return cls(row.expand(n_positions, -1).clone(), tuple(prefix), tuple(suffix))

    @classmethod
    def unigram(
        cls,
        table: Table,
        n_positions: int,
        vocab_size: int,
        *,
        prefix: Sequence[int] = (),
        suffix: Sequence[int] = (),
    ) -> InputDistribution:
        """Every free position drawn from one unigram table (``{id: weight}`` or ``[vocab]``)."""
        if n_positions < 1:
            raise MindscopeError(f"n_positions must be >= 1, got {n_positions}")
        row = _row(table, vocab_size, "unigram table")
        return cls(row.expand(n_positions, -1).clone(), tuple(prefix), tuple(suffix))

    @classmethod
    def per_position(
        cls,
        tables: Sequence[Table],
        vocab_size: int,
        *,
        prefix: Sequence[int] = (),
        suffix: Sequence[int] = (),
    ) -> InputDistribution:
        """One table per free position (a token-id list means uniform over those ids)."""
        if not tables:
            raise MindscopeError("per_position needs at least one position")
        rows = [_row(t, vocab_size, f"position {i}") for i, t in enumerate(tables)]
        return cls(torch.stack(rows), tuple(prefix), tuple(suffix))

    # ---------------------------------------------------------------- anatomy
    @property
    def n_positions(self) -> int:
        """Number of free (random) positions."""
        return int(self.probs.shape[0])

    @property
    def vocab_size(self) -> int:
        """Vocabulary size of the tables."""
        return int(self.probs.shape[1])

    @property
    def seq_len(self) -> int:
        """Length of a full sequence: prefix + free positions + suffix."""
        return len(self.prefix) + self.n_positions + len(self.suffix)

    @property
    def offset(self) -> int:
        """Index of the first free position in a full sequence."""
        return len(self.prefix)

    def supports(self) -> list[torch.Tensor]:
        """Token ids with positive probability, per position."""
        return [(r > 0).nonzero().squeeze(-1) for r in self.probs]

    @property
    def size(self) -> int:
        """Number of distinct inputs (product of the support sizes)."""
        return math.prod(len(s) for s in self.supports())

    @property
    def digest(self) -> str:
        """Content hash (16 hex chars) of the tables, prefix and suffix."""
        h = io.hasher("blake2b", digest_size=8)
        h.update(self.probs.numpy().tobytes())
        h.update(repr((self.prefix, self.suffix)).encode())
        return h.hexdigest()

    # ------------------------------------------------------------- sampling
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws of the free tokens: ``[n, n_positions]`` int64."""
        if n < 0:
            raise MindscopeError(f"cannot draw {n} samples")
        cols = [torch.multinomial(r, n, replacement=True, generator=generator) for r in self.probs]
        return torch.stack(cols, dim=1) if n else torch.zeros(0, self.n_positions, dtype=torch.long)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probability ``[n]`` (float64) of free tokens ``x [n, n_positions]``."""
        if x.ndim != 2 or x.shape[1] != self.n_positions:
            raise MindscopeError(
                f"expected [n, {self.n_positions}] token ids, got {tuple(x.shape)}"
            )
        idx = torch.arange(self.n_positions)
        return self._log[idx, x.cpu()].sum(-1)

    def full(self, x: torch.Tensor) -> torch.Tensor:
        """Whole sequences ``[n, seq_len]``: prefix + ``x [n, n_positions]`` + suffix."""
        n = x.shape[0]
        pre = torch.tensor(self.prefix, dtype=torch.long).expand(n, -1)
        suf = torch.tensor(self.suffix, dtype=torch.long).expand(n, -1)
        return torch.cat([pre, x.cpu().long(), suf], dim=1)

    def enumerate(self, batch_size: int = 65536) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Every input once, in mixed-radix order: yields ``(x [b, n_positions], log_prob [b])``."""
        sup = self.supports()
        radix = torch.tensor([len(s) for s in sup])
        total = self.size
        # place values: the last position varies fastest
        place = torch.ones(len(sup), dtype=torch.long)
        for i in range(len(sup) - 2, -1, -1):
            place[i] = place[i + 1] * radix[i + 1]
        for start in range(0, total, batch_size):
            k = torch.arange(start, min(total, start + batch_size))  # [b]
            digits = (k[:, None] // place[None, :]) % radix[None, :]  # [b, n_positions]
            x = torch.stack([sup[i][digits[:, i]] for i in range(len(sup))], dim=1)
            yield x, self.log_prob(x)


def token_set(spec: str, vocab_size: int, *, seed: int = 0, what: str = "tokens") -> list[int]:
    """The token ids a spec names, sorted as written: ``all``, an inclusive id range ``A-B``, a
    comma list ``id,id,...`` or ``random:K`` (``K`` distinct ids drawn with ``seed``, sorted).

    ``what`` names the spec in the one-line :class:`MindscopeError` a bad spec raises.
    """
    spec = spec.strip()
    if spec == "all":
        return list(range(vocab_size))
    try:
        if spec.startswith("random:"):
            k = int(spec.split(":", 1)[1])
        elif "-" in spec and "," not in spec:
            a, b = (int(s) for s in spec.split("-", 1))
            return list(range(a, b + 1))
        else:
            return [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise MindscopeError(
            f"cannot read {what} {spec!r}: use all, A-B, id,id,... or random:K"
        ) from None
    if not 0 < k <= vocab_size:
        raise MindscopeError(f"{what} {spec!r}: K must be in [1, {vocab_size}]")
    gen = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(vocab_size, generator=gen)[:k].tolist())


def zipf_unigram(
    tokens: Sequence[int], n_positions: int, vocab_size: int, *, seed: int = 0, **kw: Any
) -> InputDistribution:
    """Unigram distribution over ``tokens`` with weights ``1/rank`` in a seeded random order
    (``kw``: ``prefix``/``suffix`` ids, as :meth:`InputDistribution.unigram`)."""
    perm = torch.randperm(len(tokens), generator=torch.Generator().manual_seed(seed)).tolist()
    table = {int(tokens[j]): 1.0 / (rank + 1) for rank, j in enumerate(perm)}
    return InputDistribution.unigram(table, n_positions, vocab_size, **kw)


WEIGHTS = ("uniform", "zipf")
"""How positions are weighted in :func:`from_spec`."""


def from_spec(
    h: Any,
    tokens: str = "all",
    positions: int = 4,
    *,
    weights: str = "uniform",
    seed: int = 0,
    prefix: str = "",
    suffix: str = "",
) -> InputDistribution:
    """The input distribution a command line or config describes, for model handle ``h``:
    ``positions`` free positions over ``tokens`` (:func:`token_set`: ``all``, ``A-B``,
    ``id,id,...``, ``random:K``), weighted ``uniform`` or ``zipf`` (:func:`zipf_unigram`, a
    seeded order), between the fixed texts ``prefix`` and ``suffix``."""
    if weights not in WEIGHTS:
        raise MindscopeError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    if positions < 1:
        raise MindscopeError(f"positions must be at least 1, got {positions}")
    v = int(h.vocab_size)
    toks = token_set(tokens, v, seed=seed, what="tokens")

    def enc(text: str) -> list[int]:
        return list(h.tokenizer(text, add_special_tokens=False).input_ids) if text else []

    kw = {"prefix": enc(prefix), "suffix": enc(suffix)}
    if weights == "zipf":
        return zipf_unigram(toks, positions, v, seed=seed, **kw)
    return InputDistribution.uniform(toks, positions, v, **kw)


def describe_spec(
    tokens: str, positions: int, weights: str = "uniform", prefix: str = "", suffix: str = ""
) -> str:
    """A short name of a :func:`from_spec` distribution (the rows' ``dataset``)."""
    return (
        f"{weights}[{tokens}]^{positions}"
        + (f" prefix={prefix!r}" if prefix else "")
        + (f" suffix={suffix!r}" if suffix else "")
    )
