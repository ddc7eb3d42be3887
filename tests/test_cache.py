"""The model cache: trained models and validated graphs are reused, and a bad entry is rebuilt, never trusted."""

import json
import pickle
from pathlib import Path

import pytest
from click.testing import CliRunner

import genbench
from genbench.cache import CacheCorrupt, ModelCache, cache_key, source_fingerprint
from genbench.cli import cli
from genbench.config import RunConfig
from genbench.data import TrainingData
from genbench.types import ModelSpec


def _run(host, out, models=("tiny-cached",), **kw):
    kw = {"tasks": ["digits"], "profile": "smoke", "host": host, "out": out, "baselines": False, "device": "cpu",
          "timing": False, **kw}
    return genbench.run(list(models), **kw)


def _entry(cache_dir: Path) -> Path:
    (entry,) = [p for p in (cache_dir / "models").iterdir() if not p.name.startswith(".")]
    return entry


def _rewrite_manifest(entry: Path, name: str) -> None:
    """Make the manifest agree with a tampered file, as an attacker who can write the cache would."""
    import hashlib

    manifest = json.loads((entry / "manifest.json").read_text())
    data = (entry / name).read_bytes()
    manifest["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (entry / "manifest.json").write_text(json.dumps(manifest))


def test_a_second_run_restores_instead_of_training_and_scores_the_same(fake_host, tmp_path):
    cache_dir = tmp_path / "cache"
    first = _run(fake_host, tmp_path, cache_dir=cache_dir).jobs[0]
    second = _run(fake_host, tmp_path, cache_dir=cache_dir).jobs[0]
    assert first.status == second.status == "ok"
    assert first.cache["status"] == "stored" and second.cache["status"] == "hit"
    assert first.cache["key"] == second.cache["key"]
    assert "train" in first.phase_seconds and "export" in first.phase_seconds
    assert "train" not in second.phase_seconds and "export" not in second.phase_seconds
    assert "restore" in second.phase_seconds and "validate" in second.phase_seconds  # restored graphs are re-checked
    assert second.train["cached"] is True and second.train["steps"] == first.train["steps"]
    for name, mv in first.quality.items():
        assert second.quality[name].value == pytest.approx(mv.value, abs=1e-6), name


def test_a_different_seed_or_no_cache_trains_again(fake_host, tmp_path):
    cache_dir = tmp_path / "cache"
    _run(fake_host, tmp_path, cache_dir=cache_dir)
    assert _run(fake_host, tmp_path, cache_dir=cache_dir, seed=1).jobs[0].cache["status"] == "stored"
    job = _run(fake_host, tmp_path, cache_dir=cache_dir, cache=False).jobs[0]
    assert job.cache is None and "train" in job.phase_seconds
    other = tmp_path / "unused"
    _run(fake_host, tmp_path, cache_dir=other, cache=False)
    assert not other.exists()


def test_the_cache_directory_defaults_to_the_environment_variable(fake_host, tmp_path, monkeypatch):
    monkeypatch.setenv("GENBENCH_CACHE_DIR", str(tmp_path / "from-env"))
    result = _run(fake_host, tmp_path)
    assert result.config["cache_dir"] == str(tmp_path / "from-env")
    assert _entry(tmp_path / "from-env").is_dir()


@pytest.mark.parametrize("damage, words", [
    ("flip a byte of the weights", ["weights.pt", "sha256"]),
    ("truncate the manifest", ["manifest.json"]),
    ("delete a graph", ["bundle/g.onnx", "missing"]),
    ("pickle that runs code", ["weights_only"]),
    ("swap the graph for another valid one", ["disagrees with"]),
])
def test_a_damaged_entry_is_rebuilt_not_trusted(fake_host, tmp_path, damage, words):
    cache_dir = tmp_path / "cache"
    first = _run(fake_host, tmp_path, cache_dir=cache_dir).jobs[0]
    entry = _entry(cache_dir)
    marker = tmp_path / "pwned"
    if damage == "flip a byte of the weights":
        data = bytearray((entry / "weights.pt").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (entry / "weights.pt").write_bytes(bytes(data))
    elif damage == "truncate the manifest":
        text = (entry / "manifest.json").read_text()
        (entry / "manifest.json").write_text(text[: len(text) // 2])
    elif damage == "delete a graph":
        (entry / "bundle" / "g.onnx").unlink()
    elif damage == "pickle that runs code":
        class Exploit:
            def __reduce__(self):
                return (Path.touch, (marker,))

        (entry / "weights.pt").write_bytes(pickle.dumps(Exploit()))
        _rewrite_manifest(entry, "weights.pt")
    else:
        from fakes import _weights, write_graph

        write_graph(entry / "bundle" / "g.onnx", _weights(99))
        _rewrite_manifest(entry, "bundle/g.onnx")

    job = _run(fake_host, tmp_path, cache_dir=cache_dir).jobs[0]
    assert job.status == "ok" and job.cache["status"] == "rebuilt", job.cache
    for w in words:
        assert w in job.cache["reason"], job.cache["reason"]
    assert not marker.exists()  # the pickled payload never ran
    assert "train" in job.phase_seconds
    assert job.quality["fd"].value == pytest.approx(first.quality["fd"].value, abs=1e-6)
    again = _run(fake_host, tmp_path, cache_dir=cache_dir).jobs[0]  # the rebuilt entry is sound
    assert again.cache["status"] == "hit"


@pytest.mark.parametrize("model, status, words", [
    ("tiny-ok", "unsupported", []),  # no state_dict: trained every run
    ("tiny-raising-state", "not-stored", ["boom in state_dict"]),
    ("tiny-pickled-state", "not-stored", ["weights_only", "return only tensors"]),
])
def test_a_model_that_cannot_be_cached_is_still_benchmarked(fake_host, tmp_path, model, status, words):
    for _ in range(2):
        job = _run(fake_host, tmp_path, [model], cache_dir=tmp_path / "cache").jobs[0]
        assert job.status == "ok" and job.cache["status"] == status and "train" in job.phase_seconds
        for w in words:
            assert w in job.cache["reason"]


@pytest.mark.parametrize("model", ["tiny-wrong-restore", "tiny-raising-restore"])
def test_a_cache_hit_runs_no_plugin_code_so_a_broken_restore_cannot_matter(fake_host, tmp_path, model):
    """A hit copies the entry's validated graphs and exported programs: the plugin's load_state_dict (wrong, or
    raising) is never called, and the numbers are the first run's."""
    first = _run(fake_host, tmp_path, [model], cache_dir=tmp_path / "cache").jobs[0]
    job = _run(fake_host, tmp_path, [model], cache_dir=tmp_path / "cache").jobs[0]
    assert job.status == "ok" and job.cache["status"] == "hit"
    assert "train" not in job.phase_seconds
    assert job.quality["fd"].value == pytest.approx(first.quality["fd"].value, abs=1e-6)


def _data(x):
    import numpy as np

    return TrainingData("digits", "image", (1, 8, 8), np.asarray(x, np.float32), None, (0.0, 1.0), 17)


def test_the_key_covers_version_code_data_and_settings():
    import numpy as np

    spec = ModelSpec("tiny-cached", "test", ("image",), "fakes:CachedModel", "d", plugin="p", plugin_version="1.0")
    config = RunConfig(profile="smoke", seed=0)
    x = np.zeros((4, 1, 8, 8))
    base, fields = cache_key(spec, _data(x), config, "cpu")
    assert fields["code"] == source_fingerprint(spec.cls) != "unknown"
    changed = [
        cache_key(ModelSpec(spec.name, "test", ("image",), spec.cls, "d", plugin="p", plugin_version="1.1"),
                  _data(x), config, "cpu"),
        cache_key(spec, _data(x + 1 / 16), config, "cpu"),
        cache_key(spec, _data(x), RunConfig(profile="smoke", seed=1), "cpu"),
        cache_key(spec, _data(x), RunConfig(profile="smoke", seed=0, steps=5), "cpu"),
        cache_key(spec, _data(x), RunConfig(profile="default", seed=0), "cpu"),
        cache_key(spec, _data(x), config, "cuda"),
    ]
    assert len({base, *(k for k, _ in changed)}) == 7
    assert cache_key(spec, _data(x), config, "cpu")[0] == base  # and it is stable


def test_source_fingerprint_follows_the_code(tmp_path, monkeypatch):
    pkg = tmp_path / "genbench_fp_probe"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "model.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = source_fingerprint("genbench_fp_probe.model:X")
    (pkg / "helpers.py").write_text("Y = 2\n")  # any module of the package counts, not only the class's
    assert source_fingerprint("genbench_fp_probe.model:X") != before


def test_a_manifest_cannot_point_outside_its_entry(tmp_path):
    cache = ModelCache(tmp_path)
    entry = cache.entry_dir("a" * 64)
    entry.mkdir(parents=True)
    (tmp_path / "secret").write_text("x")
    digest = {"bytes": 1, "sha256": "0" * 64}
    (entry / "manifest.json").write_text(json.dumps({
        "format": 1, "key": "a" * 64, "fields": {"model": "m", "task": "t", "profile": "smoke", "steps": None,
                                                 "seed": 0, "device": "cpu"}, "train": {},
        "bundle": {"graphs": [{"role": "sample", "path": "g.onnx"}]}, "created_at": "2026-01-01T00:00:00+00:00",
        "files": {"weights.pt": digest, "../../secret": digest}}))
    with pytest.raises(CacheCorrupt, match="outside the entry"):
        cache.load("a" * 64)
    assert cache.load("0" * 64) is None


def test_cache_list_and_clear_commands(fake_host, tmp_path):
    cache_dir = tmp_path / "cache"
    _run(fake_host, tmp_path, cache_dir=cache_dir)
    _run(fake_host, tmp_path, cache_dir=cache_dir, seed=3)
    runner = CliRunner()
    listed = runner.invoke(cli, ["cache", "list", "--cache-dir", str(cache_dir)])
    assert listed.exit_code == 0 and "2 entries" in listed.output and listed.output.count("tiny-cached") == 2
    assert "seed=3" in listed.output
    cleared = runner.invoke(cli, ["cache", "clear", "--model", "nope", "--cache-dir", str(cache_dir)])
    assert "removed 0 entries" in cleared.output
    cleared = runner.invoke(cli, ["cache", "clear", "--cache-dir", str(cache_dir)])
    assert cleared.exit_code == 0 and "removed 2 entries" in cleared.output
    assert "0 entries" in runner.invoke(cli, ["cache", "list", "--cache-dir", str(cache_dir)]).output


def test_the_cli_flags_reach_the_run(tmp_path):
    result = CliRunner().invoke(cli, ["run", "baseline-gaussian", "--task", "digits", "--profile", "smoke",
                                      "--out", str(tmp_path), "--no-timing", "--no-cache", "--max-memory", "0"])
    assert result.exit_code == 1 and "--max-memory" in result.output
    file = tmp_path / "f"
    file.write_text("")
    result = CliRunner().invoke(cli, ["run", "baseline-gaussian", "--task", "digits", "--profile", "smoke",
                                      "--out", str(tmp_path), "--cache-dir", str(file)])
    assert result.exit_code != 0 and "--cache-dir" in result.output
