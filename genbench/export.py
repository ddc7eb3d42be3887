"""One way to export a torch module to ONNX, with the settings genbench validates against."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

OPSET = 20  # 17 fails on Split with the dynamo exporter (torch 2.13)


def export_torch_module(
    module: Any,
    example_inputs: tuple[Any, ...],
    path: str | Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]],
    opset: int = OPSET,
) -> Path:
    """Export ``module`` to a single ``.onnx`` file with symbolic axes.

    ``dynamic_axes`` maps an input name to ``{axis: symbol}`` (e.g. ``{"z": {0: "batch"}}``); the same
    symbol on several inputs means one shared dimension. Uses the dynamo exporter with
    ``torch.export.Dim``, one file (no external data) and a pinned opset. Export from an example batch of
    at least 2: an axis of size 1 can be specialised away. genbench checks every graph at several batch
    sizes before trusting it.
    """
    import torch

    unknown = set(dynamic_axes) - set(input_names)
    if unknown:
        raise ValueError(f"dynamic_axes names {sorted(unknown)} that are not in input_names {list(input_names)}")
    dims: dict[str, Any] = {}
    # positional, so input_names need not match the argument names of forward()
    dynamic_shapes = tuple(
        {ax: dims.setdefault(sym, torch.export.Dim(sym, min=1)) for ax, sym in dynamic_axes.get(name, {}).items()} or None
        for name in input_names
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    # The exporter logs warnings (e.g. 'torchvision is not installed') that say nothing about this model.
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, tuple(example_inputs), str(path), input_names=list(input_names),
                output_names=list(output_names), dynamic_shapes=dynamic_shapes, opset_version=opset,
                external_data=False, dynamo=True, verbose=False,
            )
    finally:
        quiet.setLevel(level)
    return path
