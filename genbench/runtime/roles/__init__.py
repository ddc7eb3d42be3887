"""Graph roles as a registry: one module per role, registered here.

Each role (:class:`~genbench.runtime.roles.base.Role`) declares its contract check, the sizes validation runs
it at, how genbench draws samples from it, how it computes a held-out likelihood from it and what one
generated sample is when it is timed. Validation, the harness, timing, ``run --onnx``, ``score``,
``check-plugin`` and the CLI's ``--role`` dispatch through :data:`REGISTRY`, so a new role is one module plus
its line below (and its name in :data:`genbench.types.ROLES`, the contract's vocabulary).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import BundleError
from ...types import ROLE_ALIASES, ROLES, GraphSpec, OnnxBundle
from . import denoise, likelihood, logits, sample
from .base import Generation, GraphFn, Role, ort_graph_fn, session_fn, torch_graph_fn

#: every role genbench drives, by name
REGISTRY: dict[str, Role] = {r.name: r for r in (sample.ROLE, logits.ROLE, likelihood.ROLE, denoise.ROLE)}
#: the roles genbench draws the samples it scores from, first found first
GENERATORS = ("sample", "denoise", "logits")
#: the roles a held-out likelihood comes from, first found first
LIKELIHOODS = ("likelihood", "logits")

if set(REGISTRY) != set(ROLES):  # pragma: no cover - a role registered here but not in the contract, or back
    raise ImportError(f"genbench.runtime.roles registers {sorted(REGISTRY)}, genbench.types.ROLES is {sorted(ROLES)}")


def role_of(name: str) -> Role:
    """The registered role called ``name`` (an older alias, such as ``elbo``, included)."""
    canonical = ROLE_ALIASES.get(name, name)
    if canonical not in REGISTRY:
        raise BundleError(f"Graph role {name!r} is not one of {list(REGISTRY)}.")
    return REGISTRY[canonical]


def role_choices() -> list[str]:
    """Every name ``--role`` takes: the roles, then their older aliases."""
    return [*REGISTRY, *ROLE_ALIASES]


def generator(bundle: OnnxBundle) -> GraphSpec | None:
    """The graph genbench draws samples from: the bundle's first role in :data:`GENERATORS` order."""
    roles = [g.canonical_role for g in bundle.graphs]
    return next((bundle.graph(r) for r in GENERATORS if r in roles), None)


def likelihood_graph(bundle: OnnxBundle) -> GraphSpec | None:
    roles = [g.canonical_role for g in bundle.graphs]
    return next((bundle.graph(r) for r in LIKELIHOODS if r in roles), None)


def draw_samples(bundle: OnnxBundle, device: str, n: int, seed: int, data: np.ndarray | None = None,
                 dataset: Any = None) -> np.ndarray:
    """Up to ``n`` samples of the task from the bundle's generating graph (its role may cap n: an
    autoregressive loop over 28×28 pixels is expensive), every batch checked."""
    graph = generator(bundle)
    if graph is None:
        raise BundleError(f"The bundle has no graph genbench can draw samples from (one of {list(GENERATORS)}); "
                          f"it has {[g.role for g in bundle.graphs]}.")
    role = REGISTRY[graph.canonical_role]
    return role.draw(bundle, graph, device, role.sample_count(n, dataset), seed, dataset, data)


def held_out_likelihood(bundle: OnnxBundle, dataset: Any, device: str = "cpu", seed: int = 0,
                        threads: int | None = None) -> Any:
    """The bundle's per-example held-out NLLs (a :class:`genbench.metrics.Likelihood`), None without a
    likelihood graph."""
    graph = likelihood_graph(bundle)
    return None if graph is None else REGISTRY[graph.canonical_role].likelihood(bundle, graph, dataset, device, seed, threads)


def generation_for(bundle: OnnxBundle, dataset: Any, seed: int, profile: Any = None) -> Generation | None:
    """The generate scenario of a bundle on its task, or None when it has no generating graph."""
    graph = generator(bundle)
    return None if graph is None else REGISTRY[graph.canonical_role].generation(bundle, graph, dataset, seed, profile)


__all__ = ["GENERATORS", "Generation", "GraphFn", "LIKELIHOODS", "REGISTRY", "Role", "draw_samples",
           "generation_for", "generator", "held_out_likelihood", "likelihood_graph", "ort_graph_fn", "role_choices",
           "role_of", "session_fn", "torch_graph_fn"]
