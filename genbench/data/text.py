"""Task ``text``: UTF-8 bytes (vocabulary 256, no tokenizer to download).

The embedded default corpus is the English reference prose that ships with Python itself
(``pydoc_data.topics``: about 465,000 characters, varying by Python version, so results name the corpus
by its sha256). ``--text-file PATH`` takes any corpus instead.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from . import Dataset

HELD_OUT_EVERY = 10  # default corpus: every 10th block of BLOCK bytes is held out
BLOCK = 8192
HELD_OUT_FRACTION = 0.1  # a user's file: the last 10% of its bytes are held out
MIN_BYTES = 64


def default_corpus() -> tuple[bytes, bytes, str]:
    """(train, test, description): the topics of ``pydoc_data.topics`` joined in name order, cut into
    8 KiB blocks; every 10th block is held out, so the held-out text spreads over the whole corpus."""
    from pydoc_data.topics import topics

    keys = sorted(topics)
    raw = "\n\n".join(topics[k] for k in keys).encode("utf-8")
    blocks = [raw[i:i + BLOCK] for i in range(0, len(raw), BLOCK)]
    held = lambda i: i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1  # noqa: E731
    train = b"".join(b for i, b in enumerate(blocks) if not held(i))
    test = b"".join(b for i, b in enumerate(blocks) if held(i))
    return train, test, f"pydoc_data.topics ({len(keys)} topics, {len(raw):,} bytes; every 10th 8 KiB block held out)"


def corpus_from_file(path: Path) -> tuple[bytes, bytes, str]:
    """(train, test, description) from any file: the last 10% of its bytes are held out."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"Cannot read --text-file {path}: {exc.strerror or exc}.") from exc
    if not raw:
        raise DataError(f"--text-file {path} is empty; give a text corpus of at least {MIN_BYTES} bytes.")
    if len(raw) < MIN_BYTES:
        raise DataError(f"--text-file {path} has {len(raw)} bytes; give at least {MIN_BYTES}.")
    cut = int(len(raw) * (1.0 - HELD_OUT_FRACTION))
    return raw[:cut], raw[cut:], f"{Path(path).name} (last {HELD_OUT_FRACTION:.0%} of bytes held out)"


def load_text(data_dir: Path | None = None, seed: int = 0, text_file: str | Path | None = None) -> Dataset:
    train, test, desc = corpus_from_file(Path(text_file)) if text_file else default_corpus()
    corpus_sha = hashlib.sha256(train + b"\x00" + test).hexdigest()
    return Dataset(
        name="text", kind="text", shape=(), train_x=np.frombuffer(train, dtype=np.uint8).copy(),
        test_x=np.frombuffer(test, dtype=np.uint8).copy(), value_range=(0.0, 255.0), vocab=256,
        source=f"{desc}; {len(train):,} train and {len(test):,} held-out bytes; corpus sha256 {corpus_sha}",
    )
