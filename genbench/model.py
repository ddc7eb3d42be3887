"""The abstract base class every model plugin subclasses."""

from __future__ import annotations

import abc
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

from .types import OnnxBundle, TrainConfig, TrainSummary

if TYPE_CHECKING:  # torch is imported only when a job runs
    import torch

    from .data import TrainingData

#: ``progress(completed_steps, total_steps, losses)``: the harness renders it as a progress bar.
Progress = Callable[[int, int, Mapping[str, float]], None]


class GenerativeModel(abc.ABC):
    """A trainable generative model that exports itself to ONNX.

    The harness constructs the class with no arguments, then calls, in order:

    1. :meth:`train` on the task's training split (the held-out split is never shown to a plugin);
    2. :meth:`export_onnx` into an empty directory;
    3. :meth:`torch_module` for each exported role, to check parity and to time PyTorch eager.

    Samples for scoring are drawn by the harness from the exported graphs, never from the plugin.
    """

    @abc.abstractmethod
    def train(self, data: "TrainingData", config: TrainConfig, progress: Progress) -> TrainSummary:
        """Fit the model to ``data.x`` (float32, ``[N, *data.shape]``, values in ``data.value_range``).

        Seed every random source from ``config.seed``; place tensors on ``config.device``; train for
        ``config.steps`` steps, or the model's own default for ``config.profile`` when it is ``None``;
        call ``progress`` now and then.
        """

    @abc.abstractmethod
    def export_onnx(self, directory: Path) -> OnnxBundle:
        """Write the model's graphs into ``directory`` and describe them.

        Role ``sample``: noise → samples in data space, shape ``["batch", *data.shape]``.
        Use :func:`genbench.export_torch_module` to export with the settings genbench checks.
        """

    @abc.abstractmethod
    def torch_module(self, role: str) -> "torch.nn.Module":
        """The eager module behind graph ``role``: same inputs (in order), same outputs, eval mode."""
