"""FD against a cached reference: the reference split's features, their mean, covariance and the
covariance's symmetric square root, computed once per (task data hash, extractor hash) and kept on disk.

Every job on a task scores its samples against the same test split, in the same feature space; without a
cache each job's process extracts the split's features and decomposes its covariance again. With the
square root ``S = Σᵣ^½`` at hand, the trace term of the Fréchet distance,
``tr (Σᵣ^½ Σ Σᵣ^½)^½``, needs no matrix square root at all: with the Cholesky factor ``Σ = L Lᵀ`` of the
new covariance, ``Σᵣ^½ Σ Σᵣ^½ = (S L)(S L)ᵀ``, so one triangular product (``S L``), one symmetric rank-k
update and the eigenvalues of the result (``eigvalsh``) give it — several times less work than the
eigendecomposition of ``Σᵣ`` plus two full products that :func:`genbench.metrics.frechet_distance` does,
and ten or more times less than pytorch-fid's ``sqrtm(Σ₁ Σ₂)`` (``benchmarks/test_metric_benchmarks.py``
measures both). A singular ``Σ`` (fewer samples than dimensions) takes the two-product path ``S Σ S``.

Entries: ``<cache>/references/<key>.npz`` (``$GENBENCH_CACHE_DIR``, else ``~/.cache/genbench``), written to
a temporary file and renamed into place. On read, an entry must name its own key and format, hold arrays
of consistent shapes, all finite, whose sha256 matches the one stored with them; anything else is
discarded and recomputed (said in the returned ``Reference.origin``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from scipy import linalg
from scipy.linalg import blas

FORMAT = 1
ARRAYS = ("features", "mu", "sigma", "sqrt_sigma")


@dataclass(frozen=True, eq=False)
class Reference:
    """A reference split in a feature space: features ``[n, d]``, mean, unbiased covariance and the
    covariance's symmetric positive semi-definite square root (all float64). ``origin``: ``computed``,
    ``cache`` or ``recomputed (<why the entry was refused>)``."""

    key: str
    features: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    sqrt_sigma: np.ndarray
    origin: str = "computed"

    @property
    def n(self) -> int:
        return int(self.features.shape[0])


def reference_key(data_sha256: str, extractor_id: str, split: str) -> str:
    """The cache key of a split's reference: the task data's hash, the extractor's, and which split."""
    text = json.dumps({"format": FORMAT, "data": data_sha256, "extractor": extractor_id, "split": split},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def compute_reference(features: np.ndarray, key: str = "") -> Reference:
    """Mean, covariance and its square root (``eigh``, negative round-off eigenvalues clipped) of ``features``."""
    from ..metrics.frechet import gaussian_statistics

    f = np.ascontiguousarray(features, dtype=np.float64)
    mu, sigma = gaussian_statistics(f)
    w, v = linalg.eigh((sigma + sigma.T) / 2)
    sqrt_sigma = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    return Reference(key, f, mu, sigma, (sqrt_sigma + sqrt_sigma.T) / 2)


def frechet_distance_to_reference(mu: np.ndarray, sigma: np.ndarray, ref: Reference) -> float:
    """``‖μ − μᵣ‖² + tr Σ + tr Σᵣ − 2 tr (Σᵣ^½ Σ Σᵣ^½)^½`` in float64, from the reference's cached square root.

    Equal to :func:`genbench.metrics.frechet_distance` ``(mu, sigma, ref.mu, ref.sigma)`` up to round-off
    (tested to 1e-9 relative on well-conditioned statistics, against pytorch-fid's formula too).
    """
    mu = np.atleast_1d(np.asarray(mu, np.float64))
    s = np.atleast_2d(np.asarray(sigma, np.float64))
    d = ref.mu.size
    if mu.shape != (d,) or s.shape != (d, d):
        raise ValueError(f"shape mismatch: mu {mu.shape}, sigma {s.shape} against a reference of d = {d}")
    s = (s + s.T) / 2
    try:
        chol = linalg.cholesky(s, lower=True, check_finite=False)
        # A = S L (L lower triangular, multiplied from the right), then A Aᵀ: upper triangle only
        a = blas.dtrmm(1.0, chol, np.asfortranarray(ref.sqrt_sigma), side=1, lower=1)
        m = blas.dsyrk(1.0, a, lower=0)
        eig = linalg.eigvalsh(m, lower=False, check_finite=False, driver="evr")
    except linalg.LinAlgError:  # Σ singular (fewer samples than dimensions): the two-product form
        m = ref.sqrt_sigma @ s @ ref.sqrt_sigma
        eig = linalg.eigvalsh((m + m.T) / 2, check_finite=False)
    trace_sqrt = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu - ref.mu
    return float(diff @ diff + np.trace(s) + np.trace(ref.sigma) - 2.0 * trace_sqrt)


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in ARRAYS:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class ReferenceCache:
    """References on disk under ``root/references``."""

    def __init__(self, root: Path | str) -> None:
        self.dir = Path(root) / "references"

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.npz"

    def load(self, key: str) -> Reference:
        """The entry for ``key``; raises ``ValueError`` (saying why) when it is missing or unsound."""
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(path)
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {name: z[name] for name in ARRAYS}
        if meta.get("format") != FORMAT or meta.get("key") != key:
            raise ValueError(f"the entry is for another key or format ({meta.get('key', '?')[:12]}, "
                             f"format {meta.get('format')})")
        f, mu, sigma, sq = (arrays[n] for n in ARRAYS)
        d = mu.shape[0] if mu.ndim == 1 else -1
        if f.ndim != 2 or f.shape[1] != d or sigma.shape != (d, d) or sq.shape != (d, d):
            raise ValueError("its arrays have inconsistent shapes")
        if any(a.dtype != np.float64 or not np.isfinite(a).all() for a in arrays.values()):
            raise ValueError("its arrays are not all finite float64")
        if _digest(arrays) != meta.get("sha256"):
            raise ValueError("its arrays do not match their stored sha256")
        return Reference(key, f, mu, sigma, sq, origin="cache")

    def store(self, ref: Reference) -> None:
        """Write ``ref`` atomically (a temporary file in the same directory, then ``os.replace``)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        arrays = {"features": ref.features, "mu": ref.mu, "sigma": ref.sigma, "sqrt_sigma": ref.sqrt_sigma}
        meta = json.dumps({"format": FORMAT, "key": ref.key, "sha256": _digest(arrays)})
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{ref.key[:16]}.", suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, meta=np.array(meta), **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path(ref.key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def load_or_compute(cache_dir: Path | None, key: str, features: Callable[[], np.ndarray]) -> Reference:
    """The reference for ``key`` from ``cache_dir`` (None: no disk cache), else computed from ``features()``
    and stored. An unreadable or unsound entry is recomputed and replaced; a cache that cannot be written
    never fails the metric."""
    why = None
    if cache_dir is not None:
        cache = ReferenceCache(cache_dir)
        try:
            return cache.load(key)
        except FileNotFoundError:
            pass
        except Exception as exc:  # noqa: BLE001 - a corrupt or foreign entry: recompute it
            from ..errors import one_line

            why = one_line(exc)
    ref = compute_reference(features(), key)
    if why is not None:
        ref = Reference(ref.key, ref.features, ref.mu, ref.sigma, ref.sqrt_sigma, origin=f"recomputed ({why})")
    if cache_dir is not None:
        try:
            ReferenceCache(cache_dir).store(ref)
        except OSError:
            pass
    return ref


def reference_for(ctx: Any, split: str, x: np.ndarray) -> Reference:
    """The reference of a task's ``split`` (images ``x``) in the job's feature space, for a metric's
    :class:`~genbench.metrics.QualityContext`: kept in the task's in-memory cache, and on disk under the
    model cache's directory, keyed by the task data's hash and the extractor's."""
    memo = f"reference:{split}"
    if memo not in ctx.cache:
        from ..cache import default_cache_dir

        data = ctx.cache.get("data_sha256") or ctx.cache.setdefault("data_sha256", ctx.dataset.sha256)
        key = reference_key(data, ctx.extractor_id, split)
        ctx.cache[memo] = load_or_compute(default_cache_dir(), key, lambda: ctx.features(split, x))
    return ctx.cache[memo]


__all__ = ["Reference", "ReferenceCache", "compute_reference", "frechet_distance_to_reference", "load_or_compute",
           "reference_for", "reference_key"]
