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

import psutil  # noqa: F401 - imported now, not while the server exits

from .reaping import become_subreaper, kill_descendants

# the forkserver reaps the orphans it adopts, and warns about each pid it did not fork: they are expected here
warnings.filterwarnings("ignore", message="forkserver: waitpid returned unexpected pid")

_SERVER = os.getpid()


def _take_everything_along() -> None:
    if os.getpid() == _SERVER:  # not in a process forked from the server that happens to exit normally
        kill_descendants()


if become_subreaper():
    atexit.register(_take_everything_along)
