"""The abstract base class every model plugin subclasses."""

from __future__ import annotations

import abc
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

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

    A model that also implements :meth:`state_dict` and :meth:`load_state_dict` is cached: a later run
    with the same model, plugin version and code, data, profile, steps, seed and device restores it
    (weights and validated graphs) instead of calling ``train`` and ``export_onnx`` again.

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

    def state_dict(self) -> "Mapping[str, Any] | None":
        """What :meth:`train` learned, for genbench's model cache; ``None`` (the default) opts out.

        Return tensors, numbers, strings and booleans, nested in dicts, lists and tuples (for example
        ``{"generator": self.generator.state_dict()}``): the cache writes them with ``torch.save`` and
        reads them back with ``torch.load(weights_only=True)``, which refuses anything else. Called after
        the exported bundle has passed validation. A model that returns ``None`` is trained every run.
        """
        return None

    def load_state_dict(self, state: "Mapping[str, Any]", data: "TrainingData", config: TrainConfig) -> None:
        """Become the trained model that :meth:`state_dict` described, in place of :meth:`train`.

        ``data`` and ``config`` are what ``train`` was given (the cache key covers both, so rebuild the
        networks from ``data.shape`` as ``train`` does); tensors arrive on the CPU, move them to
        ``config.device``. The harness checks the restored model against the cached graphs before it
        uses them: a restore that raises or does not match is discarded, and the model is trained again.
        """
        raise NotImplementedError(f"{type(self).__name__}.state_dict() returns weights, but load_state_dict() "
                                  "is not implemented")
