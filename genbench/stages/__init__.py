"""The two kinds of process a unit of work runs in, with files as the only channel between them.

* A **build** process runs plugin code, and nothing else of genbench's numbers: it instantiates the
  model, trains it (or restores it from the model cache), exports its ONNX graphs, captures each
  ``torch_module(role)`` with ``torch.export`` (a ``.pt2`` program) and runs that module on inputs genbench
  chose, saving the outputs (the *parity* file). It writes only into its unit directory, and on Linux it
  runs inside a bubblewrap sandbox where bwrap can run (``--sandbox``; :mod:`genbench.executors.sandbox`).
* **Score** and **time** processes are genbench only: they never import a module of a plugin (checked when
  they end), check every file they read against the sha256 recorded for it, validate the graphs, check
  parity between ONNX Runtime, the exported program and the saved outputs, draw the samples, compute the
  likelihoods and quality, and time ONNX Runtime against the exported program.

A metric a plugin registers is plugin code too: it runs in a process of its own that gets the samples
and features and returns only that metric's value (:mod:`genbench.stages.plugin_metrics`).

Every number records the kind of process that made it (``computed_by``): ``genbench`` (a score or time
process), ``plugin`` (a torch timing that ``torch.export`` could not capture, made in a build process: never
ranked) or ``inline`` (``--executor inline``, everything in one process, for debugging: never ranked).
"""

from __future__ import annotations

#: the kinds of process, as results name them (``computed_by``)
GENBENCH, PLUGIN, INLINE = "genbench", "plugin", "inline"
COMPUTED_BY = (GENBENCH, PLUGIN, INLINE)
