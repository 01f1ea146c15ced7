"""A small true/false factual dataset (200 contrast pairs) for probing real pretrained models.

Each fact appears twice, once true and once false (the false version swaps in a wrong object of
the same kind), so the dataset is exactly balanced and every statement has a minimal twin.
Categories: capitals, chemical symbols, animal classes, continents, arithmetic facts.
The pair for statement ``s`` is ``s + " This is" + (" false" | " true")``; label 1 when true.
"""

from __future__ import annotations

import random

from mindscope.data.pairs import ContrastPair
from mindscope.errors import MindscopeError

__all__ = ["facts", "FACT_COMPLETIONS"]

FACT_COMPLETIONS = (" false", " true")

_CAPITALS = [
    ("France", "Paris"),
    ("Germany", "Berlin"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Japan", "Tokyo"),
    ("China", "Beijing"),
    ("Russia", "Moscow"),
    ("Egypt", "Cairo"),
    ("Canada", "Ottawa"),
    ("Australia", "Canberra"),
    ("Brazil", "Brasilia"),
    ("Argentina", "Buenos Aires"),
    ("Mexico", "Mexico City"),
    ("India", "New Delhi"),
    ("Kenya", "Nairobi"),
    ("Greece", "Athens"),
    ("Portugal", "Lisbon"),
    ("Norway", "Oslo"),
    ("Sweden", "Stockholm"),
    ("Finland", "Helsinki"),
    ("Poland", "Warsaw"),
    ("Austria", "Vienna"),
    ("Ireland", "Dublin"),
    ("Peru", "Lima"),
    ("Thailand", "Bangkok"),
    ("South Korea", "Seoul"),
    ("Turkey", "Ankara"),
    ("Iran", "Tehran"),
    ("Cuba", "Havana"),
    ("Hungary", "Budapest"),
]
_SYMBOLS = [
    ("hydrogen", "H"),
    ("helium", "He"),
    ("carbon", "C"),
    ("nitrogen", "N"),
    ("oxygen", "O"),
    ("sodium", "Na"),
    ("iron", "Fe"),
    ("gold", "Au"),
    ("silver", "Ag"),
    ("copper", "Cu"),
    ("lead", "Pb"),
    ("potassium", "K"),
    ("calcium", "Ca"),
    ("neon", "Ne"),
    ("zinc", "Zn"),
    ("tin", "Sn"),
    ("mercury", "Hg"),
    ("sulfur", "S"),
]
_ANIMALS = [
    ("dog", "mammal"),
    ("cat", "mammal"),
    ("whale", "mammal"),
    ("horse", "mammal"),
    ("bat", "mammal"),
    ("eagle", "bird"),
    ("sparrow", "bird"),
    ("penguin", "bird"),
    ("owl", "bird"),
    ("parrot", "bird"),
    ("salmon", "fish"),
    ("shark", "fish"),
    ("tuna", "fish"),
    ("trout", "fish"),
    ("frog", "amphibian"),
    ("salamander", "amphibian"),
    ("snake", "reptile"),
    ("lizard", "reptile"),
    ("crocodile", "reptile"),
    ("turtle", "reptile"),
]
_CONTINENTS = [
    ("Kenya", "Africa"),
    ("Nigeria", "Africa"),
    ("Egypt", "Africa"),
    ("Japan", "Asia"),
    ("Vietnam", "Asia"),
    ("India", "Asia"),
    ("France", "Europe"),
    ("Germany", "Europe"),
    ("Spain", "Europe"),
    ("Brazil", "South America"),
    ("Chile", "South America"),
    ("Peru", "South America"),
    ("Canada", "North America"),
    ("Mexico", "North America"),
    ("Australia", "Oceania"),
]
_NUMBERS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
]
_SUMS = [
    (1, 1),
    (2, 2),
    (3, 4),
    (2, 5),
    (4, 4),
    (5, 3),
    (6, 3),
    (1, 9),
    (7, 2),
    (3, 3),
    (6, 6),
    (5, 5),
    (4, 7),
    (2, 8),
    (0, 3),
    (1, 6),
    (9, 3),
]


def _wrong(rng: random.Random, right: str, pool: list[str]) -> str:
    return rng.choice([p for p in pool if p != right])


def _statements(rng: random.Random) -> list[tuple[str, int, str]]:
    out: list[tuple[str, int, str]] = []
    caps = [c for _, c in _CAPITALS]
    for country, cap in _CAPITALS:
        out.append((f"The capital of {country} is {cap}.", 1, "capital"))
        out.append((f"The capital of {country} is {_wrong(rng, cap, caps)}.", 0, "capital"))
    syms = [s for _, s in _SYMBOLS]
    for elem, sym in _SYMBOLS:
        out.append((f"The chemical symbol for {elem} is {sym}.", 1, "element"))
        out.append((f"The chemical symbol for {elem} is {_wrong(rng, sym, syms)}.", 0, "element"))
    classes = sorted({c for _, c in _ANIMALS})
    for animal, cls in _ANIMALS:
        art = "an" if cls[0] in "aeiou" else "a"
        wrong = _wrong(rng, cls, classes)
        wart = "an" if wrong[0] in "aeiou" else "a"
        out.append((f"The {animal} is {art} {cls}.", 1, "animal"))
        out.append((f"The {animal} is {wart} {wrong}.", 0, "animal"))
    conts = sorted({c for _, c in _CONTINENTS})
    for country, cont in _CONTINENTS:
        out.append((f"{country} is in {cont}.", 1, "continent"))
        out.append((f"{country} is in {_wrong(rng, cont, conts)}.", 0, "continent"))
    for a, b in _SUMS:
        s = a + b
        wrong_s = s + rng.choice([-2, -1, 1, 2]) if s > 2 else s + rng.choice([1, 2])
        out.append((f"{_NUMBERS[a]} plus {_NUMBERS[b]} is {_NUMBERS[s]}.".capitalize(), 1, "sum"))
        out.append(
            (f"{_NUMBERS[a]} plus {_NUMBERS[b]} is {_NUMBERS[wrong_s]}.".capitalize(), 0, "sum")
        )
    return out


def facts(n: int | None = None, *, seed: int = 0, suffix: str = " This is") -> list[ContrastPair]:
    """The factual true/false contrast pairs (200 in all), shuffled with ``seed``.

    Args:
        n: keep the first ``n`` after shuffling (default: all 200).
        seed: shuffle (and wrong-object) seed; the same seed gives the same list.
        suffix: text between the statement and the completion.

    Returns:
        pairs with prompt ``statement + suffix``, completions ``(" false", " true")``, label 1
        when the statement is true; ``meta`` has ``statement``, ``category``, ``truth``.
    """
    rng = random.Random(f"facts:{seed}")
    items = _statements(rng)
    rng.shuffle(items)
    if n is not None:
        if not 0 < n <= len(items):
            raise MindscopeError(f"facts: n must be in 1..{len(items)}, got {n}")
        items = items[:n]
    return [
        ContrastPair(
            prompt=s + suffix,
            completions=FACT_COMPLETIONS,
            label=label,
            meta={"statement": s, "category": cat, "truth": label},
        )
        for s, label, cat in items
    ]
