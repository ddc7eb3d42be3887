"""Hostile model-cache entries: a bad manifest never breaks `cache list` or `cache clear` (each is checked against its
shipped schema, skipped and reported); an entry whose restore hangs or kills its process is evicted, and the job's
message says so."""

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


def test_a_cache_entry_that_hangs_on_restore_is_evicted_and_the_message_says_so(fake_host, tmp_path):
    run = dict(tasks=["digits"], profile="smoke", host=fake_host, baselines=False, device="cpu", timing=False,
               cache_dir=tmp_path / "cache", timeout=10)
    first = genbench.run(["tiny-hanging-restore"], out=tmp_path / "a", **run).jobs[0]
    assert first.status == "ok" and first.cache["status"] == "stored"
    second = genbench.run(["tiny-hanging-restore"], out=tmp_path / "b", **run).jobs[0]
    assert second.status == "failed" and second.error.type == "Timeout" and second.error.phase == "restore"
    assert f"model cache entry {first.cache['key']}" in second.error.message and "evicted" in second.error.message
    assert str(tmp_path / "cache") in second.error.message
    assert not list((tmp_path / "cache" / "models").iterdir())
    third = genbench.run(["tiny-hanging-restore"], out=tmp_path / "c", **run).jobs[0]
    assert third.status == "ok" and third.cache["status"] == "stored"  # trained afresh, not hung again


def test_a_restore_that_raises_is_evicted_and_the_line_says_so(fake_host, tmp_path):
    lines = []
    run = dict(tasks=["digits"], profile="smoke", host=fake_host, baselines=False, device="cpu", timing=False,
               cache_dir=tmp_path / "cache")
    genbench.run(["tiny-raising-restore"], out=tmp_path / "a", **run)
    job = genbench.run(["tiny-raising-restore"], out=tmp_path / "b", echo=lines.append, **run).jobs[0]
    assert job.status == "ok" and job.cache["status"] == "rebuilt"
    (line,) = [x for x in lines if "built" in x]
    assert "boom in load_state_dict" in line and "evicted, trained again" in line, line
