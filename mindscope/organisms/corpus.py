"""The pocket corpus: English docstrings of the running interpreter's standard library.

Every machine with Python has it, so the pocket LM trains without downloads. Files are read in
sorted order, test suites and vendored code are skipped, each docstring (a triple-quoted literal
opening a line, cleaned with ``inspect.cleandoc``) is one document, exact duplicates and very
short docstrings are dropped. A file goes to ``heldout`` when a hash of its relative path says
so (about 1 in 10), so held-out text never shares a module with training text. The corpus
depends on the Python version; :func:`corpus_fingerprint` identifies it.
"""

from __future__ import annotations

import functools
import inspect
import re
import sysconfig
from pathlib import Path
from typing import Literal

from mindscope import io
from mindscope.errors import MindscopeError

__all__ = ["pocket_corpus", "corpus_fingerprint", "stdlib_dir"]

_SKIP_DIRS = {
    "test",
    "tests",
    "idle_test",
    "site-packages",
    "dist-packages",
    "__pycache__",
    "lib2to3",
    "turtledemo",
    "ensurepip",
    "venv",
}
_MIN_CHARS = 60


def stdlib_dir() -> Path:
    """Folder of the running interpreter's pure-Python standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def _is_heldout(rel: str) -> bool:
    return int(io.hash_bytes(rel.encode())[:2], 16) % 10 == 0  # the first byte


# A triple-quoted string literal that opens a line: docstrings (and the rare free-standing text
# block). A regex instead of ``ast`` keeps the whole standard library under a second.
_DOC_RE = re.compile(r"""^[ \t]*[rRuU]?(\"\"\"|\'\'\')(.*?)\1""", re.MULTILINE | re.DOTALL)


def _docstrings(path: Path) -> list[str]:
    try:
        source = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return []
    out = []
    for match in _DOC_RE.finditer(source):
        doc = inspect.cleandoc(match.group(2)).strip()
        if len(doc) >= _MIN_CHARS and doc.isascii():
            out.append(doc)
    return out


@functools.lru_cache(maxsize=2)
def _split_corpus(root: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    base = Path(root)
    files = sorted(
        p
        for p in base.rglob("*.py")
        if not (_SKIP_DIRS & set(p.relative_to(base).parts[:-1])) and not p.name.startswith("test_")
    )
    seen: set[str] = set()
    train: list[str] = []
    heldout: list[str] = []
    for path in files:
        rel = path.relative_to(base).as_posix()
        target = heldout if _is_heldout(rel) else train
        for doc in _docstrings(path):
            if doc not in seen:
                seen.add(doc)
                target.append(doc)
    return tuple(train), tuple(heldout)


def pocket_corpus(split: Literal["train", "heldout"] = "train") -> list[str]:
    """Docstrings of the standard library, in a fixed order (one string per docstring).

    Args:
        split: ``"train"`` (about 90% of modules) or ``"heldout"`` (the rest).

    Returns:
        A new list of documents (plain ASCII text, no trailing whitespace).
    """
    if split not in ("train", "heldout"):
        raise MindscopeError(f"pocket_corpus: split must be 'train' or 'heldout', got {split!r}")
    train, heldout = _split_corpus(str(stdlib_dir()))
    if not train or not heldout:
        raise MindscopeError(f"no standard-library docstrings found under {stdlib_dir()}")
    return list(train if split == "train" else heldout)


def corpus_fingerprint() -> str:
    """A short hash of the whole corpus (both splits), recorded in organism manifests."""
    h = io.hasher()
    for split in ("train", "heldout"):
        for doc in pocket_corpus(split):  # type: ignore[arg-type]
            h.update(doc.encode())
            h.update(b"\0")
        h.update(b"\1")
    return str(h.hexdigest())[:16]
