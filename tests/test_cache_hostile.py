"""Hostile model-cache entries: a bad manifest never breaks `cache list` or `cache clear` (each is checked against its
shipped schema, skipped and reported); a restore that never finished evicts its entry; a hit never runs the
plugin's code, so a plugin's hanging or raising restore cannot touch it."""

import json
import os

import pytest
from click.testing import CliRunner

import genbench
from genbench.cache import CacheCorrupt, ModelCache
from genbench.cli import cli

KEY = "ab" * 32


def _bad_entries(models):
    """One entry per way a manifest can be wrong."""
    cases = {
        "not-json": "{\"format\": 1, ",
        "fields-a-string": {"fields": "gan-mlp"},
        "created-an-int": {"created_at": 12},
        "nan": "{\"format\": NaN}",
        "deep": "[" * 100_000 + "]" * 100_000,
        "hostile-model-name": {"fields": {"model": "\x1b[2Jgan", "task": "digits", "profile": "smoke", "steps": None,
                                          "seed": 0, "device": "cpu"}},
        "no-manifest": None,
    }
    good = {"format": 1, "key": None, "fields": {"model": "tiny-cached", "task": "digits", "profile": "smoke",
                                                  "steps": None, "seed": 0, "device": "cpu"},
            "train": {}, "bundle": {"graphs": [{"role": "sample", "path": "g.onnx"}]},
            "files": {"weights.pt": {"bytes": 1, "sha256": "0" * 64}}, "created_at": "2026-11-29T09:00:00+00:00"}
    for i, (name, content) in enumerate(cases.items()):
        key = f"{i:02d}" + "c" * 62
        entry = models / key
        entry.mkdir(parents=True)
        if content is None:
            continue
        if isinstance(content, dict):
            content = json.dumps({**good, "key": key, **content})
        (entry / "manifest.json").write_text(content)
    (models / "stray-file").write_text("not an entry")
    os.symlink("/", models / ("ee" * 32))  # never followed, never deleted through
    return len(cases)


def test_bad_manifests_are_listed_as_unreadable_and_cleared(fake_host, tmp_path):
    cache_dir = tmp_path / "cache"
    genbench.run(["tiny-cached"], tasks=["digits"], profile="smoke", host=fake_host, out=tmp_path / "runs",
                 baselines=False, device="cpu", timing=False, cache_dir=cache_dir)
    bad = _bad_entries(cache_dir / "models")

    r = CliRunner().invoke(cli, ["cache", "list", "--cache-dir", str(cache_dir)])
    assert r.exit_code == 0, r.output
    assert f"{bad + 1} entries" in r.output and "tiny-cached" in r.output
    assert r.output.count("unreadable:") == bad and "\x1b" not in r.output and "Traceback" not in r.output
    assert "does not match schema genbench.cache-manifest/1: field fields" in r.output
    entries = ModelCache(cache_dir).entries()
    assert [e for e in entries if e["readable"]][0]["model"] == "tiny-cached"

    r = CliRunner().invoke(cli, ["cache", "clear", "--model", "tiny-cached", "--cache-dir", str(cache_dir)])
    assert r.exit_code == 0 and "removed 1 entries" in r.output and f"kept {bad} unreadable" in r.output, r.output
    r = CliRunner().invoke(cli, ["cache", "clear", "--cache-dir", str(cache_dir)])
    assert r.exit_code == 0 and f"removed {bad} entries" in r.output, r.output
    assert list((cache_dir / "models").iterdir()) == [] and os.path.isdir("/")


def test_a_restore_that_never_finished_evicts_the_entry(tmp_path):
    cache = ModelCache(tmp_path)
    (tmp_path / "models" / KEY).mkdir(parents=True)
    dead = 2**22 + 12345  # beyond the default pid_max: no such process
    (tmp_path / "models" / KEY / f".restoring-{dead}").touch()
    with pytest.raises(CacheCorrupt, match=f"by process {dead}\\) never finished"):
        cache.load(KEY)
    with cache.restoring(KEY):  # this process, alive: not stale
        assert (tmp_path / "models" / KEY / f".restoring-{os.getpid()}").exists()
        assert cache.evict_restoring(os.getpid()) == KEY
    assert not (tmp_path / "models" / KEY).exists()


@pytest.mark.parametrize("model", ["tiny-hanging-restore", "tiny-raising-restore"])
def test_a_cache_hit_never_calls_the_plugin_so_its_restore_cannot_hang_or_fail_the_job(fake_host, tmp_path, model):
    """A hit is restored by genbench alone (files copied, then validated in a score process): the plugin's
    ``load_state_dict``, which hangs for an hour or raises, is never called."""
    run = dict(tasks=["digits"], profile="smoke", host=fake_host, baselines=False, device="cpu", timing=False,
               cache_dir=tmp_path / "cache", timeout=60)
    first = genbench.run([model], out=tmp_path / "a", **run).jobs[0]
    assert first.status == "ok" and first.cache["status"] == "stored"
    second = genbench.run([model], out=tmp_path / "b", **run).jobs[0]
    assert second.status == "ok" and second.cache["status"] == "hit", second.error
    assert "train" not in second.phase_seconds and "restore" in second.phase_seconds
    for name, value in first.quality.items():
        assert second.quality[name].value == pytest.approx(value.value, abs=1e-6), name
