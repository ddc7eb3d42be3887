"""Cached references no one can plant, and a cache no one else can write (#24 items 4 and 5).

References (the test split's features and statistics in a feature space) live in the run's cache folder,
follow ``--cache-dir`` and ``--no-cache``, are listed and cleared with the models, are stored only by a
process that ran no plugin code, and are checked on read against features computed afresh for a few random
rows. Model entries and references that another user owns, or that others may write, are refused in one line.
"""

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import genbench
from genbench.cli import cli
from genbench.config import RunConfig


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def digits_state():
    from genbench.harness import load_task_state
    from genbench.plugins import make_plugin_manager

    host = make_plugin_manager(entry_points=False)
    return load_task_state(host.registry.dataset("digits"), RunConfig(executor="inline", jobs=1))


def _fresh(state):
    """The task as a new process sees it: the same data and extractor, nothing cached in memory."""
    from genbench.harness import TaskState

    return TaskState(state.dataset, state.extractor, {}, state.inception)


def _fd(state, samples, cache_dir, cache=True):
    """The FD metric of ``samples`` as a job computes it, with the run's cache folder ``cache_dir``."""
    from genbench.harness import quality_context
    from genbench.metrics.builtin import FrechetDistance

    config = RunConfig(executor="inline", jobs=1, cache=cache, cache_dir=cache_dir)
    ctx = quality_context(state, samples, 0, None, config, {})
    return FrechetDistance()(ctx).value, state.cache


def _test_key(state):
    from genbench.features.reference import reference_key

    return reference_key(state.dataset.sha256, state.extractor.id, "test")


def _plant(path: Path, key: str, features: np.ndarray, stats_from: np.ndarray | None = None) -> None:
    """Write a reference entry as a planter would, from public inputs only: the format, the key (public
    hashes) and a sha256 over the arrays, which anyone can compute."""
    import hashlib

    from genbench.features.reference import ARRAYS, compute_reference

    ref = compute_reference(features, key)
    other = compute_reference(stats_from, key) if stats_from is not None else ref
    arrays = {"features": ref.features, "mu": other.mu, "sigma": other.sigma, "sqrt_sigma": other.sqrt_sigma}
    h = hashlib.sha256()
    for name in ARRAYS:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, meta=np.array(json.dumps({"format": 1, "key": key, "sha256": h.hexdigest()})), **arrays)
    os.chmod(path, 0o644)


OTHER_UID = 4242


def _give_to_another_user(monkeypatch, *paths: Path) -> str:
    """Make ``paths`` (and what is inside them) another user's: ``os.chown`` when the tests run as root, else
    an owner check that trusts another uid only. Returns what the refusal says of the owner."""
    if os.getuid() == 0:
        for top in paths:
            for p in [top, *(top.rglob("*") if top.is_dir() else ())]:
                os.lchown(p, OTHER_UID, OTHER_UID)
        return f"is owned by uid {OTHER_UID}, not by this user"
    import genbench.cache as cache_module

    me = os.getuid()
    monkeypatch.setattr(cache_module, "_trusted_owners", lambda: {me + OTHER_UID})
    return f"(uid {me}), not by this user"


def _samples(state, n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = state.dataset.test_x[rng.choice(len(state.dataset.test_x), n)]
    return np.clip(x + rng.normal(0, 0.15, x.shape), 0, 1).astype(np.float32)


# --------------------------------------------------------------------------- item 4: planting


def test_a_planted_reference_built_from_other_samples_is_found_out_and_not_used(digits_state, tmp_path):
    from genbench.cache import default_cache_dir

    cache = default_cache_dir()  # the folder main reads references from too: the attack as it was
    samples = _samples(digits_state)
    honest, _ = _fd(_fresh(digits_state), samples, None, cache=False)
    # a plugin's build stores a "test split" reference built from its own samples under the public key, as
    # many rows as the test split has
    own = _samples(digits_state, n=len(digits_state.dataset.test_x), seed=10)
    planted_from = _fresh(digits_state).extractor(own)[0]
    path = cache / "references" / f"{_test_key(digits_state)}.npz"
    _plant(path, _test_key(digits_state), planted_from)
    with_planted, task_cache = _fd(_fresh(digits_state), samples, cache)
    assert with_planted == pytest.approx(honest, rel=1e-9), "the planted reference was used"
    from genbench.features.reference import reference_notes

    (note,) = reference_notes(task_cache)
    assert "\n" not in note and f"cached reference {_test_key(digits_state)[:16]}" in note
    assert "refused (" in note and "not the extractor's: built from other data" in note and "recomputed" in note
    # the planted entry was replaced by genbench's own: the next job reads it, checked, and it is sound
    again, task_cache = _fd(_fresh(digits_state), samples, cache)
    assert again == pytest.approx(honest, rel=1e-9) and reference_notes(task_cache) == []


def test_planted_statistics_beside_genuine_rows_are_found_out(digits_state, tmp_path):
    """Rows copied from a genuine reference pass the row check; statistics of other samples beside them do not."""
    from genbench.features.reference import reference_notes

    cache = tmp_path / "cache"
    samples = _samples(digits_state, seed=1)
    honest, _ = _fd(_fresh(digits_state), samples, None, cache=False)
    real = _fresh(digits_state).extractor(digits_state.dataset.test_x)[0]
    fake = _fresh(digits_state).extractor(samples)[0]
    _plant(cache / "references" / f"{_test_key(digits_state)}.npz", _test_key(digits_state), real, stats_from=fake)
    value, task_cache = _fd(_fresh(digits_state), samples, cache)
    assert value == pytest.approx(honest, rel=1e-9)
    (note,) = reference_notes(task_cache)
    assert "its mean is not the mean of its rows" in note


def test_references_live_in_the_configured_cache_and_follow_no_cache(digits_state, tmp_path, monkeypatch):
    from genbench.cache import default_cache_dir

    env_cache = default_cache_dir()
    chosen = tmp_path / "chosen"
    samples = _samples(digits_state, seed=2)
    _fd(_fresh(digits_state), samples, chosen)  # --cache-dir chosen
    assert [p.name for p in (chosen / "references").glob("*.npz")] == [f"{_test_key(digits_state)}.npz"]
    assert not (env_cache / "references").exists()  # nothing beside it in $GENBENCH_CACHE_DIR
    mode = stat.S_IMODE((chosen / "references" / f"{_test_key(digits_state)}.npz").stat().st_mode)
    assert mode & 0o022 == 0
    # --no-cache: a planted entry is not even read, and nothing is written
    nocache = tmp_path / "nocache"
    honest, _ = _fd(_fresh(digits_state), samples, None, cache=False)
    planted = nocache / "references" / f"{_test_key(digits_state)}.npz"
    _plant(planted, _test_key(digits_state), _fresh(digits_state).extractor(samples)[0])
    before = planted.read_bytes()
    value, task_cache = _fd(_fresh(digits_state), samples, nocache, cache=False)
    assert value == pytest.approx(honest, rel=1e-9) and task_cache.get("reference-notes", []) == []
    assert planted.read_bytes() == before and not (env_cache / "references").exists()


def test_cache_list_shows_references_and_cache_clear_removes_them(digits_state, tmp_path):
    cache = tmp_path / "cache"
    _fd(_fresh(digits_state), _samples(digits_state, seed=3), cache)
    key = _test_key(digits_state)
    r = invoke("cache", "list", "--cache-dir", cache)
    assert r.exit_code == 0 and "0 entries, 0.0 MiB; 1 references" in r.output and key[:16] in r.output
    data = json.loads(invoke("cache", "list", "--cache-dir", cache, "--json").stdout)
    from genbench.schemas import validate

    validate(data, "genbench.cache-list/1", "cache list")
    assert [e["key"] for e in data["references"]] == [key] and data["references"][0]["problem"] is None
    r = invoke("cache", "clear", "--cache-dir", cache)
    assert r.exit_code == 0 and "removed 0 entries (0.0 MiB) and 1 references" in r.output
    assert list((cache / "references").iterdir()) == []
    assert "; 0 references" in invoke("cache", "list", "--cache-dir", cache).output


def test_a_process_that_ran_plugin_code_stores_no_reference(digits_state, tmp_path):
    from genbench.features import reference

    reference.plugin_code_runs_here()  # as build() does before it instantiates the plugin's model
    try:
        cache = tmp_path / "cache"
        _fd(_fresh(digits_state), _samples(digits_state, seed=4), cache)
        assert not list((cache / "references").glob("*.npz"))
        with pytest.raises(PermissionError, match="ran plugin code"):
            reference.ReferenceCache(cache).store(reference.compute_reference(np.eye(3), "k"))
    finally:
        reference._PLUGIN_CODE_RAN = False


def test_a_run_warns_of_a_planted_reference_in_one_line_and_scores_against_the_real_one(digits_state, tmp_path):
    """End to end: a run (inline) with a planted reference in its cache reports the honest FD and says why."""
    kw = dict(tasks=["digits"], profile="smoke", out=tmp_path / "runs", baselines=False, timing=False, device="cpu",
              executor="inline")
    honest = genbench.run(["baseline-gaussian"], cache=False, **kw).jobs[0]
    cache = tmp_path / "cache"
    _plant(cache / "references" / f"{_test_key(digits_state)}.npz", _test_key(digits_state),
           digits_state.extractor(digits_state.dataset.train_x)[0])  # the training split's, not the test split's
    job = genbench.run(["baseline-gaussian"], cache_dir=cache, **kw).jobs[0]
    assert job.status == "ok" and job.quality["fd"].value == pytest.approx(honest.quality["fd"].value, rel=1e-9)
    notes = [w for w in job.warnings if w.startswith("cached reference ")]
    assert len(notes) == 1 and "\n" not in notes[0] and "rows" in notes[0] and "recomputed" in notes[0]


# --------------------------------------------------------------------------- item 5: shared caches


def test_a_group_or_world_writable_reference_is_refused_in_one_line(digits_state, tmp_path):
    from genbench.features.reference import reference_notes

    cache = tmp_path / "cache"
    samples = _samples(digits_state, seed=5)
    honest, _ = _fd(_fresh(digits_state), samples, cache)  # genbench's own entry
    path = cache / "references" / f"{_test_key(digits_state)}.npz"
    for mode, who in ((0o664, "its group"), (0o646, "others"), (0o666, "its group and others")):
        os.chmod(path, mode)
        value, task_cache = _fd(_fresh(digits_state), samples, cache)
        (note,) = reference_notes(task_cache)
        assert value == pytest.approx(honest, rel=1e-9)
        assert f"is writable by {who} (mode {mode:o}; chmod go-w it)" in note and "ignored, recomputed" in note
        assert stat.S_IMODE(path.stat().st_mode) == mode  # ignored, not rewritten
    os.chmod(path, 0o644)
    os.chmod(cache / "references", 0o777)  # a folder others may write: its entries could have been swapped
    value, task_cache = _fd(_fresh(digits_state), samples, cache)
    (note,) = reference_notes(task_cache)
    assert "references is writable by its group and others (mode 777" in note
    listed = json.loads(invoke("cache", "list", "--cache-dir", cache, "--json").stdout)["references"]
    assert listed[0]["problem"] is None  # the file itself is sound; the folder is what read refuses
    os.chmod(cache / "references", 0o755)
    os.chmod(path, 0o666)
    listed = json.loads(invoke("cache", "list", "--cache-dir", cache, "--json").stdout)["references"]
    assert listed[0]["problem"].startswith("refused (never used): ") and "writable by" in listed[0]["problem"]


def test_a_reference_another_user_owns_is_refused(digits_state, tmp_path, monkeypatch):
    from genbench.features.reference import reference_notes

    cache = tmp_path / "cache"
    samples = _samples(digits_state, seed=6)
    honest, _ = _fd(_fresh(digits_state), samples, None, cache=False)
    path = cache / "references" / f"{_test_key(digits_state)}.npz"  # another user's, in a shared cache
    _plant(path, _test_key(digits_state), _fresh(digits_state).extractor(digits_state.dataset.train_x[:450])[0])
    owner = _give_to_another_user(monkeypatch, path)
    value, task_cache = _fd(_fresh(digits_state), samples, cache)
    (note,) = reference_notes(task_cache)
    assert value == pytest.approx(honest, rel=1e-9)
    assert owner in note and "ignored" in note
    r = invoke("cache", "clear", "--cache-dir", cache)  # another user's: not ours to remove
    assert "and 0 references" in r.output and list((cache / "references").glob("*.npz"))


@pytest.fixture
def cached_entry(fake_host, tmp_path):
    cache = tmp_path / "cache"
    kw = dict(tasks=["digits"], profile="smoke", host=fake_host, out=tmp_path / "runs", baselines=False,
              device="cpu", timing=False, executor="inline", cache_dir=cache)
    first = genbench.run(["tiny-cached"], **kw).jobs[0]
    assert first.cache["status"] == "stored"
    (entry,) = [p for p in (cache / "models").iterdir() if not p.name.startswith(".")]
    return cache, entry, kw


def test_a_group_writable_model_entry_is_refused_ignored_and_kept(cached_entry):
    cache, entry, kw = cached_entry
    assert all(stat.S_IMODE(p.lstat().st_mode) & 0o022 == 0 for p in [entry, *entry.rglob("*")])
    weights = entry / "weights.pt"
    os.chmod(weights, 0o664)  # another member of the group could have swapped the weights
    job = genbench.run(["tiny-cached"], **kw).jobs[0]
    assert job.status == "ok" and job.cache["status"] == "rebuilt" and "train" in job.phase_seconds
    reason = job.cache["reason"]
    assert "\n" not in reason and "refused and ignored" in reason
    assert f"{weights} is writable by its group (mode 664; chmod go-w it)" in reason
    assert weights.exists()  # ignored, not removed: it may be another user's
    listed = json.loads(invoke("cache", "list", "--cache-dir", cache, "--json").stdout)["entries"]
    assert listed[0]["readable"] is False and "refused (never used)" in listed[0]["problem"]
    os.chmod(weights, 0o644)
    assert genbench.run(["tiny-cached"], **kw).jobs[0].cache["status"] == "hit"


def test_a_model_entry_another_user_planted_is_refused(cached_entry, monkeypatch):
    """The shared-cache attack: another user's files under this user's key, with this user's manifest fields."""
    cache, entry, kw = cached_entry
    owner = _give_to_another_user(monkeypatch, entry)  # the same files and manifest, now another user's
    job = genbench.run(["tiny-cached"], **kw).jobs[0]
    assert job.cache["status"] == "rebuilt" and "train" in job.phase_seconds
    assert owner in job.cache["reason"] and "refused and ignored" in job.cache["reason"]
    listing = invoke("cache", "list", "--cache-dir", cache).stdout
    assert "another user's: 'genbench cache clear' leaves it" in listing  # it said clear would remove it
    r = invoke("cache", "clear", "--cache-dir", cache)
    assert r.exit_code == 0 and "removed 0 entries" in r.output and entry.is_dir()  # not ours to remove
    assert "kept 1 entries another user owns" in r.output and "without --model removes them" not in r.output


def test_a_world_writable_cache_folder_refuses_every_entry(cached_entry):
    cache, entry, kw = cached_entry
    os.chmod(cache, 0o777)
    job = genbench.run(["tiny-cached"], **kw).jobs[0]
    assert job.cache["status"] == "rebuilt"
    assert f"{cache} is writable by its group and others (mode 777; chmod go-w it)" in job.cache["reason"]
    os.chmod(cache, 0o755)


def test_score_processes_store_references_in_the_chosen_cache_and_refuse_a_planted_one(digits_state, tmp_path):
    """The process executor, as runs are made: the score process (no plugin code) stores the reference under
    --cache-dir, not under $GENBENCH_CACHE_DIR; a planted replacement is refused by the next run's job."""
    from genbench.cache import default_cache_dir

    kw = dict(tasks=["digits"], profile="smoke", out=tmp_path / "runs", baselines=False, timing=False, device="cpu")
    chosen = tmp_path / "chosen"
    first = genbench.run(["baseline-gaussian"], cache_dir=chosen, **kw).jobs[0]
    path = chosen / "references" / f"{_test_key(digits_state)}.npz"
    assert first.status == "ok" and path.is_file() and not (default_cache_dir() / "references").exists()
    _plant(path, _test_key(digits_state), digits_state.extractor(digits_state.dataset.train_x[:450])[0])
    second = genbench.run(["baseline-gaussian"], cache_dir=chosen, **kw).jobs[0]
    assert second.quality["fd"].value == pytest.approx(first.quality["fd"].value, rel=1e-9)
    assert len([w for w in second.warnings if w.startswith("cached reference ") and "refused" in w]) == 1
    third = genbench.run(["baseline-gaussian"], cache_dir=chosen, **kw).jobs[0]  # replaced by genbench's own
    assert not [w for w in third.warnings if w.startswith("cached reference ")]
