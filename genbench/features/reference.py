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

Entries: ``<cache>/references/<key>.npz`` in the run's model cache (``--cache-dir``, else
``$GENBENCH_CACHE_DIR``, else ``~/.cache/genbench``; none under ``--no-cache``), written to a temporary file
and renamed into place, listed by ``genbench cache list`` and removed by ``genbench cache clear``. They are
written only by genbench's own computation, in a process that has run no plugin code
(:func:`plugin_code_runs_here`). The key is public, so anyone who can write the folder could plant an
entry; nothing stored is trusted:

* the entry, its folder and the cache folder must be this user's (or root's) and writable by no one else
  (:func:`genbench.cache.check_safe`), as ssh requires of a key file;
* it must name its own key and format, hold arrays of consistent shapes, all finite, whose sha256 matches
  the one stored with them, and as many rows as the split;
* its statistics must be its rows' (the mean exactly; the covariance and its square root against random
  projections drawn when it is read);
* and its rows must be the split's: the features of :data:`VERIFY_ROWS` test rows chosen at random when it
  is read are computed afresh and compared. A planter does not know which rows will be checked, so a
  reference built from other samples is found out.

Anything else is refused: recomputed, replaced where this process may write, and said in one line
(``Reference.origin``, and a warning on the job that read it).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from scipy import linalg
from scipy.linalg import blas

FORMAT = 1
ARRAYS = ("features", "mu", "sigma", "sqrt_sigma")
FOLDER = "references"
#: test rows whose features are computed afresh and compared whenever a stored reference is read
VERIFY_ROWS = 8
#: random directions the stored covariance and its square root are checked along
VERIFY_PROJECTIONS = 4
_PLUGIN_CODE_RAN = False


def plugin_code_runs_here() -> None:
    """Mark this process as one that runs (or ran) plugin code (a build process, a plugin metric's or
    reporter's process): from then on it stores no reference, since what it computed may have been tampered
    with. It still reads them, each checked as any reader checks them."""
    global _PLUGIN_CODE_RAN
    _PLUGIN_CODE_RAN = True


def may_store() -> bool:
    return not _PLUGIN_CODE_RAN


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
        self.root = Path(root).expanduser()
        self.dir = self.root / FOLDER

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.npz"

    def load(self, key: str) -> Reference:
        """The entry for ``key``; raises ``FileNotFoundError`` when there is none, ``ValueError`` (saying why)
        when it is unsound, :class:`genbench.cache.CacheUnsafe` when others could have written it."""
        from ..cache import check_safe

        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(path)
        check_safe(self.root, self.dir, path)
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
        """Write ``ref`` atomically (a temporary file in the same directory, then ``os.replace``), readable by
        others, writable by no one else; refused in a process that ran plugin code."""
        from ..cache import cache_folder, check_safe

        if not may_store():
            raise PermissionError("this process ran plugin code: it stores no reference")
        cache_folder(self.dir)
        check_safe(self.root, self.dir)
        arrays = {"features": ref.features, "mu": ref.mu, "sigma": ref.sigma, "sqrt_sigma": ref.sqrt_sigma}
        meta = json.dumps({"format": FORMAT, "key": ref.key, "sha256": _digest(arrays)})
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{ref.key[:16]}.", suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, meta=np.array(meta), **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path(ref.key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def entries(self) -> list[dict[str, Any]]:
        """One dict per stored reference (key, bytes, created_at; ``problem`` when it would be refused for who
        owns or may write it), for ``genbench cache list``. Their content is checked when a run reads them."""
        import datetime as dt

        from ..cache import unsafe_reason

        out = []
        for path in sorted(self.dir.glob("*.npz")) if self.dir.is_dir() else ():
            try:
                st = os.lstat(path)
            except OSError:
                continue
            why = unsafe_reason(path)
            out.append({"key": path.stem, "bytes": int(st.st_size),
                        "created_at": dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc).isoformat(
                            timespec="seconds"),
                        "problem": f"refused (never used): {why}" if why else None})
        return sorted(out, key=lambda e: e["created_at"], reverse=True)

    def clear(self) -> tuple[int, int]:
        """Remove every reference (and leftovers of interrupted writes) this user owns; (removed, bytes)."""
        from ..cache import _foreign

        removed = freed = 0
        for path in sorted(self.dir.iterdir()) if self.dir.is_dir() and not self.dir.is_symlink() else ():
            if _foreign(path) or path.is_dir() and not path.is_symlink():
                continue
            try:
                size = os.lstat(path).st_size
                path.unlink()
            except OSError:
                continue
            if path.suffix == ".npz" and not path.name.startswith("."):
                removed, freed = removed + 1, freed + size
        return removed, freed


def verify(ref: Reference, rows: Callable[[np.ndarray], np.ndarray] | None, n: int | None = None) -> None:
    """``ValueError`` (saying why) unless ``ref``'s statistics are its rows' and, with ``rows`` (which computes
    the features of the split's rows at given indices), :data:`VERIFY_ROWS` of its rows chosen at random now
    are the split's. ``n``: the split's row count."""
    f = ref.features
    count, d = f.shape
    if n is not None and count != n:
        raise ValueError(f"it holds {count:,} rows; the split has {n:,}")
    if count < 2:
        raise ValueError("it holds fewer than 2 rows")
    rng = np.random.default_rng(secrets.randbits(128))  # unknown to whoever wrote the entry
    scale = max(float(np.abs(f).max()), 1e-12)
    if not np.allclose(f.mean(0), ref.mu, rtol=1e-9, atol=1e-9 * scale):
        raise ValueError("its mean is not the mean of its rows")
    r = rng.standard_normal((d, VERIFY_PROJECTIONS))
    p = (f - ref.mu) @ r
    want = r.T @ ref.sigma @ r
    if not np.allclose(p.T @ p / (count - 1), want, rtol=1e-6, atol=1e-9 * max(float(np.abs(want).max()), 1e-300)):
        raise ValueError("its covariance is not the covariance of its rows")
    sigma_r = ref.sigma @ r
    if not (np.allclose(ref.sqrt_sigma, ref.sqrt_sigma.T, rtol=0, atol=1e-9 * max(float(np.abs(ref.sqrt_sigma).max()), 1e-300))
            and np.allclose(ref.sqrt_sigma @ (ref.sqrt_sigma @ r), sigma_r, rtol=1e-6,
                            atol=1e-7 * max(float(np.abs(sigma_r).max()), 1e-300))):
        raise ValueError("its covariance's square root does not square to its covariance")
    if rows is None:
        return
    idx = np.sort(rng.choice(count, size=min(VERIFY_ROWS, count), replace=False))
    fresh = np.asarray(rows(idx), dtype=np.float64)
    if fresh.shape != (len(idx), d):
        raise ValueError(f"its rows have {d} features; the extractor gives {list(fresh.shape[1:])}")
    tol = 1e-3 * max(float(np.abs(fresh).max()), 1e-12)
    bad = np.flatnonzero(~np.isclose(f[idx], fresh, rtol=1e-4, atol=tol).all(1))
    if bad.size:
        raise ValueError(f"its features of split row {int(idx[bad[0]])} (and {bad.size - 1} more of "
                         f"{len(idx)} rows checked at random) are not the extractor's: built from other data")


def load_or_compute(cache_dir: Path | None, key: str, features: Callable[[], np.ndarray],
                    rows: Callable[[np.ndarray], np.ndarray] | None = None, n: int | None = None,
                    notes: list[str] | None = None) -> Reference:
    """The reference for ``key`` from ``cache_dir`` (None: no disk cache, as under ``--no-cache``), checked
    (:func:`verify` with ``rows`` and ``n``), else computed from ``features()`` and stored. A refused entry is
    recomputed, replaced when it is this user's, and said in one line appended to ``notes``; a cache that
    cannot be written never fails the metric."""
    from ..cache import CacheUnsafe
    from ..errors import one_line

    why, unsafe = None, False
    if cache_dir is not None:
        cache = ReferenceCache(cache_dir)
        try:
            ref = cache.load(key)
            verify(ref, rows, n)
            return ref
        except FileNotFoundError:
            pass
        except CacheUnsafe as exc:  # its own words say what and why: no exception name for the user
            why, unsafe = " ".join(str(exc).split()) or "unsafe", True
        except Exception as exc:  # noqa: BLE001 - a corrupt, foreign or planted entry: recompute it
            why = one_line(exc)
    ref = compute_reference(features(), key)
    if why is not None:
        ref = Reference(ref.key, ref.features, ref.mu, ref.sigma, ref.sqrt_sigma, origin=f"recomputed ({why})")
        if notes is not None:
            what = "ignored" if unsafe else "not used"
            notes.append(f"cached reference {key[:16]} in {Path(cache_dir) / FOLDER} refused ({why}); {what}, "
                         "recomputed from the data")
    if cache_dir is not None and not unsafe and may_store():
        try:
            ReferenceCache(cache_dir).store(ref)
        except (OSError, CacheUnsafe):
            pass
    return ref


def reference_notes(cache: dict[str, Any]) -> list[str]:
    """The refusals of stored references since the last call (one line each), from a task's cache: a job
    adds them to its warnings."""
    return cache.pop(NOTES, [])


NOTES = "reference-notes"


def reference_for(ctx: Any, split: str, x: np.ndarray) -> Reference:
    """The reference of a task's ``split`` (images ``x``) in the job's feature space, for a metric's
    :class:`~genbench.metrics.QualityContext`: kept in the task's in-memory cache, and on disk under the
    run's cache folder (``ctx.cache_dir``; None: not on disk), keyed by the task data's hash and the
    extractor's, and checked on read against the features of random rows of ``x``."""
    memo = f"reference:{split}"
    if memo not in ctx.cache:
        data = ctx.cache.get("data_sha256") or ctx.cache.setdefault("data_sha256", ctx.dataset.sha256)
        key = reference_key(data, ctx.extractor_id, split)
        ctx.cache[memo] = load_or_compute(
            getattr(ctx, "cache_dir", None), key, lambda: ctx.features(split, x),
            rows=lambda idx: ctx.features(f"verify:{split}:{_rows_id(idx)}", x[idx]), n=len(x),
            notes=ctx.cache.setdefault(NOTES, []))
    return ctx.cache[memo]


def _rows_id(idx: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(idx, np.int64).tobytes()).hexdigest()[:16]


__all__ = ["Reference", "ReferenceCache", "compute_reference", "frechet_distance_to_reference", "load_or_compute",
           "plugin_code_runs_here", "reference_for", "reference_key", "reference_notes", "verify"]
