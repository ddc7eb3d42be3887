"""One way to export a torch module to ONNX, with the settings genbench validates against."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

OPSET = 20  # 17 fails on Split with the dynamo exporter (torch 2.13)


EXPORTER_ENV = "GENBENCH_ONNX_EXPORTER"  # torchscript (default: ~20x faster here) or dynamo


def export_torch_module(
    module: Any,
    example_inputs: tuple[Any, ...],
    path: str | Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
    opset: int = OPSET,
    exporter: str | None = None,
) -> Path:
    """Export ``module`` to a single ``.onnx`` file with symbolic axes.

    ``dynamic_axes`` maps an input name to ``{axis: symbol}`` (e.g. ``{"z": {0: "batch"}}``); the same
    symbol on several inputs means one shared dimension, and output axes that follow a symbol are found
    by running the module. By default (``None``) axis 0 of every input is the shared ``"batch"`` axis
    (``{name: {0: "batch"} for name in input_names}``), what every graph role needs; name the others
    yourself (a ``logits`` graph's sequence axis: ``{"tokens": {0: "batch", 1: "seq"}}``). Export from an example batch of at least 2: an axis of size 1 can be
    specialised away. One file (no external data), a pinned opset.

    ``exporter``: ``"torchscript"`` (default; ``$GENBENCH_ONNX_EXPORTER`` overrides) or ``"dynamo"``
    (``torch.export`` with ``Dim``s; several seconds a graph). Where the TorchScript exporter is gone
    from torch, the dynamo one is used. Either way genbench checks every graph at several sizes and
    against the module before trusting it.
    """
    import torch

    if dynamic_axes is None:
        dynamic_axes = {name: {0: "batch"} for name in input_names}
    unknown = set(dynamic_axes) - set(input_names)
    if unknown:
        raise ValueError(f"dynamic_axes names {sorted(unknown)} that are not in input_names {list(input_names)}")
    exporter = exporter or os.environ.get(EXPORTER_ENV, "torchscript")
    if exporter not in ("torchscript", "dynamo"):
        raise ValueError(f"exporter must be 'torchscript' or 'dynamo', got {exporter!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    example = tuple(example_inputs)
    # The exporters log and warn about things that say nothing about this model.
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            if exporter == "torchscript":
                try:
                    axes = {**{k: dict(v) for k, v in dynamic_axes.items()},
                            **_output_axes(module, example, input_names, output_names, dynamic_axes)}
                    torch.onnx.export(module, example, str(path), input_names=list(input_names),
                                      output_names=list(output_names), dynamic_axes=axes, opset_version=opset,
                                      dynamo=False)
                    return path
                except TypeError:  # a torch without the TorchScript exporter
                    pass
            dims: dict[str, Any] = {}
            # positional, so input_names need not match the argument names of forward()
            dynamic_shapes = tuple(
                {ax: dims.setdefault(sym, torch.export.Dim(sym, min=1))
                 for ax, sym in dynamic_axes.get(name, {}).items()} or None
                for name in input_names
            )
            torch.onnx.export(module, example, str(path), input_names=list(input_names),
                              output_names=list(output_names), dynamic_shapes=dynamic_shapes, opset_version=opset,
                              external_data=False, dynamo=True, verbose=False)
    finally:
        quiet.setLevel(level)
    return path


def _output_axes(module: Any, example: tuple[Any, ...], input_names: Sequence[str], output_names: Sequence[str],
                 dynamic_axes: Mapping[str, Mapping[int, str]]) -> dict[str, dict[int, str]]:
    """Output axes that follow each input symbol: grow that symbol by one and see which output axes move."""
    import torch

    def outputs(args: tuple[Any, ...]) -> list[Any]:
        with torch.no_grad():
            out = module(*args)
        return list(out) if isinstance(out, (tuple, list)) else [out]

    def grow(t: Any, axes: list[int]) -> Any:
        for ax in axes:  # repeat the last slice: values stay valid (e.g. token ids)
            t = torch.cat([t, t.narrow(ax, t.shape[ax] - 1, 1)], dim=ax)
        return t

    base = outputs(example)
    found: dict[str, dict[int, str]] = {}
    for sym in sorted({s for axes in dynamic_axes.values() for s in axes.values()}):
        grown = tuple(grow(t, [ax for ax, s in dynamic_axes.get(name, {}).items() if s == sym])
                      for t, name in zip(example, input_names))
        for name, a, b in zip(output_names, base, outputs(grown)):
            for ax, (da, db) in enumerate(zip(a.shape, b.shape)):
                if da != db:
                    found.setdefault(name, {})[ax] = sym
    return found
