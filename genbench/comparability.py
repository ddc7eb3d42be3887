"""When two quality numbers may stand side by side: the comparability key (DESIGN.md §8).

Every :class:`~genbench.types.MetricValue` in a ``genbench.run/2`` file carries ``key``: the task and
the sha256 of its data, the feature extractor's hash, ``n`` (samples or held-out examples scored), the
data variant of a likelihood (binarized, quantized to L levels, continuous, bytes) and whether it is
exact or a bound, the quality-relevant profile settings (training budget), and the number of training
seeds averaged. Leaderboards and ``genbench compare`` rank or diff two numbers only when every field
is equal; otherwise they split them and name the fields that differ. The genbench version and commit
are recorded beside each row, not keyed: a pull-request gate compares two commits by design.

The key also records which seeds made a number (``seed_ids``, beside the count ``seeds``): not a field two
numbers must share, since a mean over seeds 0–2 and one over seeds 3–5 estimate the same thing, but what
``genbench leaderboard`` pools on (runs of one key that differ only in their seeds become one mean over the
union) and what ``genbench compare`` checks (two single-seed runs with different seeds are refused).

A ``genbench.run/1`` file predates keys: what it does not say is :data:`UNKNOWN`, which is equal to
nothing, not even another :data:`UNKNOWN` (two runs that do not say what they measured cannot be shown to
have measured the same thing): such numbers are never ranked or diffed beside another run's.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

KEY_FIELDS = ("task", "data", "extractor", "n", "variant", "bound", "profile", "seeds")
UNKNOWN = "unknown"
#: how each field is named in a table header that splits on it
FIELD_LABELS = {"task": "task", "data": "data (sha256)", "extractor": "feature extractor", "n": "n scored",
                "variant": "data variant", "bound": "likelihood", "profile": "profile", "seeds": "seeds"}


def profile_key(profile: str, steps: int | None = None, training_data: str | None = None) -> str:
    """The quality-relevant part of a profile: its training budget (``smoke``/``default``), any
    ``--steps`` override (``default, steps=0`` is an untrained model, not a default one), and what the
    model was trained on when it was not the training split (``default, train 1/16``: genbench limits)."""
    parts = [profile] + ([f"steps={steps}"] if steps is not None else []) + ([training_data] if training_data else [])
    return ", ".join(parts)


def make_key(*, task: str, data: str | None, extractor: str | None, n: int | None,
             params: Mapping[str, Any] | None, profile: str, seeds: int) -> dict[str, Any]:
    """The key of one metric value; ``variant`` and ``bound`` come from the metric's ``params``."""
    params = params or {}
    return {"task": task, "data": data, "extractor": extractor, "n": n,
            "variant": params.get("variant"), "bound": params.get("bound"), "profile": profile, "seeds": seeds}


def key_of(metric: Any, task: str | None = None) -> dict[str, Any]:
    """``metric.key`` with every field present; fields a file did not record are :data:`UNKNOWN`."""
    key = dict(getattr(metric, "key", None) or {})
    if not key:  # a /1 value: what it carried itself is known, the rest is not
        params = getattr(metric, "params", None) or {}
        key = {"task": task or UNKNOWN, "data": UNKNOWN, "extractor": getattr(metric, "extractor", None),
               "n": getattr(metric, "n", None), "variant": params.get("variant", UNKNOWN),
               "bound": params.get("bound", UNKNOWN), "profile": UNKNOWN, "seeds": UNKNOWN}
    return {f: key.get(f, UNKNOWN) for f in KEY_FIELDS}


def seed_ids(metric: Any) -> tuple[int, ...] | None:
    """The training seeds that made ``metric`` (``key["seed_ids"]``), or None where the key does not record them."""
    ids = (getattr(metric, "key", None) or {}).get("seed_ids")
    if isinstance(ids, (list, tuple)) and all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        return tuple(ids)
    return None


def unknown_fields(key: Mapping[str, Any]) -> list[str]:
    """The key fields ``key`` does not record (:data:`UNKNOWN`)."""
    return [f for f in KEY_FIELDS if key.get(f, UNKNOWN) == UNKNOWN]


def differing(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The key fields in which ``a`` and ``b`` differ (empty: comparable); a field either does not record
    differs, whatever the other says."""
    return [f for f in KEY_FIELDS
            if a.get(f, UNKNOWN) == UNKNOWN or b.get(f, UNKNOWN) == UNKNOWN or a.get(f) != b.get(f)]


def freeze(key: Mapping[str, Any]) -> tuple:
    """A hashable form of a key, for grouping."""
    return tuple((f, _hashable(key.get(f, UNKNOWN))) for f in KEY_FIELDS)


def _hashable(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    return v


def short(field: str, value: Any) -> str:
    """One key field's value as a reader wants it in a header: hashes cut to 12 characters."""
    if value is None:
        return "none"
    text = str(value)
    if field == "data" and len(text) > 12:
        return text[:12]
    if field == "extractor" and "@sha256:" in text:
        name, digest = text.split("@sha256:", 1)
        return f"{name}@{digest[:12]}"
    return text


def describe(key: Mapping[str, Any], fields: Iterable[str]) -> str:
    """``"n scored 500, profile smoke"``: the named fields of a key, for headers and warnings."""
    return ", ".join(f"{FIELD_LABELS.get(f, f)} {short(f, key.get(f, UNKNOWN))}" for f in fields)


__all__ = ["FIELD_LABELS", "KEY_FIELDS", "UNKNOWN", "describe", "differing", "freeze", "key_of", "make_key",
           "profile_key", "seed_ids", "short", "unknown_fields"]
