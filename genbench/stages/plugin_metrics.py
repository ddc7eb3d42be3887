"""A metric a plugin registered, run in a process of its own.

A plugin's metric is plugin code: called in the score process, its factory could rewrite any other number
(a registered metric once added 500 to another model's FD from its factory). Here the score process forks
a child for it, after genbench's own metrics are done: the child sees a copy of the samples, the features
and the task's data, runs only that metric's factory and call, and sends back only its value, as plain
JSON; whatever it changes dies with it. A metric that raises, hangs (:data:`METRIC_TIMEOUT`), crashes or
returns something else fails alone, with its reason.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
import traceback
from typing import Any, Callable

from ..errors import PluginError, one_line
from ..types import MetricSpec, MetricValue

METRIC_TIMEOUT = 300.0
MAX_REPLY = 4 * 2**20
GENBENCH_PLUGIN = "genbench"


def is_plugin_metric(spec: MetricSpec) -> bool:
    """Whether ``spec`` comes from a plugin (anything but genbench's own built-ins)."""
    return spec.plugin != GENBENCH_PLUGIN


class PluginMetric:
    """Stands in the score process for a plugin's metric: calling it forks the child that computes it."""

    def __init__(self, spec: MetricSpec, timeout: float = METRIC_TIMEOUT) -> None:
        self.spec, self.timeout = spec, timeout

    def __call__(self, ctx: Any) -> MetricValue | None:
        return run_isolated(lambda: _compute(self.spec, ctx), self.timeout, f"metric '{self.spec.name}'")


def _compute(spec: MetricSpec, ctx: Any) -> dict[str, Any] | None:
    from ..registry import load_object

    metric = load_object(spec.factory, owner=f"metric '{spec.name}'")()
    value = metric(ctx)
    if value is None:
        return None
    if not isinstance(value, MetricValue):
        raise PluginError(f"returned {type(value).__name__}, expected MetricValue")
    return value.to_dict()


def run_isolated(work: Callable[[], dict[str, Any] | None], timeout: float, what: str) -> MetricValue | None:
    """``work()`` in a forked child; its JSON result as a MetricValue (None: not applicable). Raises
    :class:`PluginError` (one line) when the child raised, died or overran ``timeout`` seconds."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()  # a unit's process is a daemon to multiprocessing: it forks by hand
    if pid == 0:  # the child: compute, send, die
        os.close(read_fd)
        try:
            from ..features.reference import plugin_code_runs_here

            plugin_code_runs_here()  # this child runs a plugin's metric: it stores no reference
            os.setpgid(0, 0)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            message = json.dumps({"value": work()}, allow_nan=True)
        except BaseException as exc:  # noqa: BLE001 - report, then die
            message = json.dumps({"error": one_line(exc), "traceback": traceback.format_exc()[-2000:]})
        try:
            data = message.encode()[: MAX_REPLY]
            view = memoryview(data)
            while view:
                view = view[os.write(write_fd, view):]
        finally:
            os._exit(0)
    os.close(write_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PluginError(f"{what} took more than {timeout:g} s; its process was killed")
            ready, _, _ = select.select([read_fd], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        for sig_target in (-pid, pid):
            try:
                os.kill(sig_target, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    try:
        payload = json.loads(b"".join(chunks))
    except ValueError:
        raise PluginError(f"{what}: its process died without a result") from None
    if "error" in payload:
        raise PluginError(payload["error"])
    value = payload.get("value")
    if value is None:
        return None
    try:
        return MetricValue.from_dict(value)
    except Exception as exc:  # noqa: BLE001
        raise PluginError(f"{what} returned a malformed value ({one_line(exc)})") from None
