"""Imported by the forkserver alone (it is in its preload list; nothing else imports it).

The forkserver is the parent of every unit's process. It becomes the subreaper of their descendants: a
process a plugin started (``setsid`` or not) whose unit's process died before it (killed at ``--timeout``, by
the out-of-memory killer, by its own ``os._exit``) becomes the forkserver's child rather than ``init``'s,
where genbench finds and kills it (:func:`genbench.executors.local.sweep_orphans`). The forkserver exits
when genbench does, however genbench ends (even by SIGKILL: it reads EOF from genbench), and then takes
every process below it along.
"""

from __future__ import annotations

import atexit
import os
import warnings

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib.pyplot  # noqa: E402,F401 - preloaded for sample grids
import numpy  # noqa: E402,F401
import onnx  # noqa: E402,F401
import onnxruntime  # noqa: E402,F401
import psutil  # noqa: E402,F401 - imported now, not while the server exits
import sklearn.datasets  # noqa: E402,F401 - the digits task
import torch  # noqa: E402,F401
# torch.export's loader and exporter (TorchDynamo, about 1 s to import): every score and time process loads
# exported programs, and every unsandboxed build process captures them; import them once, here
import torch._export.serde.serialize  # noqa: E402,F401
import torch.export  # noqa: E402,F401

from .reaping import become_subreaper, kill_descendants

# the forkserver reaps the orphans it adopts, and warns about each pid it did not fork: they are expected here
warnings.filterwarnings("ignore", message="forkserver: waitpid returned unexpected pid")

_SERVER = os.getpid()


def _take_everything_along() -> None:
    if os.getpid() == _SERVER:  # not in a process forked from the server that happens to exit normally
        kill_descendants()


if become_subreaper():
    atexit.register(_take_everything_along)
