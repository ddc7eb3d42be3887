"""Processes a plugin starts never outlive its unit.

A process group is not enough: a plugin's ``setsid`` (or ``start_new_session=True``) leaves the group, and a
double fork leaves the process tree, so such a process used to live on under ``init`` after its job ended, its
standard output still a pipe that someone waits on. On Linux a *child subreaper* (``PR_SET_CHILD_SUBREAPER``)
receives the orphaned descendants of its children instead of ``init``: a unit's process is one for what its
plugin starts, and the forkserver (the parent of every unit's process) is one for what a unit's process left
behind when it died. Then "every descendant" (:func:`kill_descendants`) is every process the plugin started,
wherever it moved.

Elsewhere (macOS, Windows) the flag does not exist: only the unit's process group is killed.
"""

from __future__ import annotations

import os
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36
#: rounds of "find every descendant, kill it": a process that forks while it is being killed needs another round
KILL_ROUNDS = 20


def become_subreaper() -> bool:
    """Make this process the subreaper of its descendants (Linux); whether it is one now."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def kill_descendants(pid: int | None = None, process: object = None) -> int:
    """SIGKILL every live descendant of ``pid`` (default: this process), round after round until none is
    left (a process that forks meanwhile: its children move to the nearest subreaper, which is ``pid`` or
    one of its descendants while ``pid`` lives); how many were killed. ``process``: a ``psutil.Process`` of
    ``pid`` taken earlier, so that a pid reused since is never mistaken for it."""
    import psutil

    killed = 0
    try:
        root = process if process is not None else psutil.Process(pid if pid is not None else os.getpid())
    except psutil.Error:
        return 0
    for _ in range(KILL_ROUNDS):
        try:
            found = root.children(recursive=True)
        except psutil.Error:  # the root is gone (or is another process now)
            return killed
        alive = []
        for child in found:
            try:
                if child.status() != psutil.STATUS_ZOMBIE:
                    alive.append(child)
            except psutil.Error:
                pass
        if not alive:
            break
        for child in alive:
            try:
                child.send_signal(signal.SIGKILL)
                killed += 1
            except psutil.Error:
                pass
    return killed


__all__ = ["PR_SET_CHILD_SUBREAPER", "become_subreaper", "kill_descendants"]
