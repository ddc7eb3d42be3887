"""Train and export the shipped feature extractors: ``python -m genbench.features.build [NAME...]``.

Run once by the maintainers; the resulting ONNX files and their sha256 go into ``assets/``. Results
name the extractor by that hash, so rebuilding (other library versions give other bytes) makes new,
separately comparable numbers; it never silently changes old ones. A rebuild is checked against the
shipped test accuracy (``tests/test_mnist5k.py``), not its bytes.

* ``digits-cnn``: trained on the ``digits`` training split (8×8), scored on its test split.
* ``mnist-cnn``: for 28×28 digits (``mnist``, ``mnist5k``): trained on the ``mnist5k`` training split
  (4,000 real MNIST digits, never its 1,000 test digits), scored on that test split.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import ASSETS, MANIFEST

FEATURE_DIM = 32


@dataclass(frozen=True)
class Recipe:
    """How one extractor is trained: its input side, the task whose splits it uses, epochs, and the text
    the manifest records as ``trained_on``."""

    size: int
    task: str
    epochs: int
    trained_on: str


RECIPES = {
    "digits-cnn": Recipe(8, "digits", 60, "digits train split (1,347 images, 8x8)"),
    "mnist-cnn": Recipe(28, "mnist5k", 20, "mnist5k train split (4,000 real MNIST digits, 28x28), random shifts"),
}


def _make_net(size: int):
    import torch
    from torch import nn

    class DigitNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            pool_first = [nn.MaxPool2d(2)] if size > 16 else []
            self.body = nn.Sequential(
                nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), *pool_first,
                nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            )
            side = size // (4 if pool_first else 2)
            self.embed = nn.Sequential(nn.Linear(64 * side * side, 128), nn.ReLU(), nn.Linear(128, FEATURE_DIM))
            self.head = nn.Sequential(nn.ReLU(), nn.Linear(FEATURE_DIM, 10))

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            f = self.embed(self.body(x * 2.0 - 1.0))
            return f, self.head(f)

    return DigitNet()


def _augment(x, rng, size: int):
    """Random shifts (±1 px at 8×8, ±3 px at 28×28) by padding and cropping."""
    import torch
    import torch.nn.functional as F

    pad = 1 if size <= 8 else 3
    padded = F.pad(x, (pad, pad, pad, pad))
    out = torch.empty_like(x)
    offs = rng.integers(0, 2 * pad + 1, size=(len(x), 2))
    for i, (dy, dx) in enumerate(offs):
        out[i] = padded[i, :, dy:dy + size, dx:dx + size]
    return out


def train_extractor(name: str, seed: int = 0, epochs: int | None = None):
    """(network, test accuracy) for extractor ``name``; only the task's training split is learned from."""
    import torch
    import torch.nn.functional as F

    from ..data.digits import load_digits
    from ..data.mnist5k import load_mnist5k

    recipe = RECIPES[name]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    ds = {"digits": load_digits, "mnist5k": load_mnist5k}[recipe.task]()
    xtr, xte = torch.from_numpy(ds.train_x), torch.from_numpy(ds.test_x)
    ytr, yte = torch.from_numpy(ds.train_y), torch.from_numpy(ds.test_y)
    net = _make_net(recipe.size)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(recipe.epochs if epochs is None else epochs):
        net.train()
        perm = torch.from_numpy(rng.permutation(len(xtr)))
        for i in range(0, len(xtr), 64):
            idx = perm[i:i + 64]
            _, logits = net(_augment(xtr[idx], rng, recipe.size))
            loss = F.cross_entropy(logits, ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = float((net(xte)[1].argmax(1) == yte).float().mean())
    return net, acc


def build(name: str, directory: Path = ASSETS) -> dict:
    """Train ``name``, export it to ``directory/<name>.onnx`` and return its manifest entry."""
    import torch

    from ..export import export_torch_module

    recipe = RECIPES[name]
    net, acc = train_extractor(name)
    path = Path(directory) / f"{name}.onnx"
    export_torch_module(net.eval(), (torch.rand(4, 1, recipe.size, recipe.size),), path, input_names=["x"],
                        output_names=["features", "logits"], dynamic_axes={"x": {0: "batch"}})
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"{name}: test accuracy {acc:.4f}, sha256 {sha}")
    return {"file": path.name, "sha256": sha, "input_shape": [1, recipe.size, recipe.size],
            "feature_dim": FEATURE_DIM, "num_classes": 10, "trained_on": recipe.trained_on,
            "test_accuracy": round(acc, 4)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(RECIPES), choices=list(RECIPES), metavar="NAME",
                        help=f"extractors to rebuild (default: all of {', '.join(RECIPES)})")
    args = parser.parse_args(argv)
    ASSETS.mkdir(parents=True, exist_ok=True)
    entries = json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {}
    for name in args.names:
        entries[name] = build(name)
    MANIFEST.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
