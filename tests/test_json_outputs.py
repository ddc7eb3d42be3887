"""--format json (alias --json) of list, plugins, check-plugin and cache list: one JSON document on stdout,
valid against its shipped schema, saying what the text says."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

import genbench
from genbench.cli import cli
from genbench.schemas import SCHEMAS, load_schema, validate


@pytest.fixture
def entry_points(monkeypatch):
    """The test plugin, a plugin that cannot be imported and a plugin that prints while it registers, as
    installed entry points."""
    import fakes

    class Chatty:
        @staticmethod
        @genbench.hookimpl
        def genbench_register_models(register):
            print("chatty says hello", end="")  # no newline: it must not run into genbench's output
            register(genbench.ModelSpec("chatty-one", "test", ("ring8",), "fakes:TinyModel", "named-task model"))
            register(genbench.ModelSpec("Bad Name", "test", ("image",), "fakes:TinyModel", "bad"))
            register(genbench.ModelSpec("chatty-two", "test", ("imagez",), "fakes:TinyModel", "a typo in tasks"))

    import genbench.plugins as plugins

    eps = [SimpleNamespace(name="fakes", dist=SimpleNamespace(name="genbench-fakes", version="9.9"),
                           load=lambda: fakes.FakePlugin),
           SimpleNamespace(name="broken", dist=None, load=lambda: (_ for _ in ()).throw(ImportError("no module x"))),
           SimpleNamespace(name="chatty", dist=None, load=lambda: Chatty)]
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: eps if group == "genbench" else [])


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize("flag", [["--json"], ["--format", "json"]])
def test_list_json(entry_points, flag):
    r = invoke("list", *flag)
    assert r.exit_code == 0
    data = json.loads(r.stdout)  # stdout is JSON alone: the chatty plugin's print is not in it
    validate(data, "genbench.list/1", "genbench list --json")
    models = {m["name"]: m for m in data["models"]}
    assert models["tiny-ok"] == {"name": "tiny-ok", "family": "test", "tasks": ["image"], "cls": "fakes:TinyModel",
                                 "description": "test model tiny-ok", "plugin": "genbench-fakes",
                                 "plugin_version": "9.9"}
    assert models["chatty-one"]["tasks"] == ["ring8"] and "chatty-two" in models and "Bad Name" not in models
    assert {"digits", "ring8", "grid25", "text"} <= {t["name"] for t in data["tasks"]}
    assert {"fd", "nll"} <= {m["name"] for m in data["metrics"]} and data["reporters"]
    assert {(f["plugin"], f["phase"]) for f in data["plugin_failures"]} == {("broken", "import"), ("chatty", "register")}
    assert any("chatty-two" in w and "'imagez'" in w and "Did you mean 'image'" in w for w in data["warnings"])
    # the text form says the same
    text = invoke("list")
    assert "tiny-ok" in text.stdout and "chatty-one" in text.stdout and "warning: model 'chatty-two'" in text.stderr


def test_plugins_json_and_text_keep_streams_apart(entry_points):
    r = invoke("plugins", "--json")
    data = json.loads(r.stdout)
    validate(data, "genbench.plugins/1", "genbench plugins --json")
    plugins = {p["name"]: p for p in data["plugins"]}
    # one bad spec in a hook does not drop the plugin's other models
    assert plugins["chatty"]["registered"] == ["model:chatty-one", "model:chatty-two"]
    assert plugins["chatty"]["printed"] == "chatty says hello" and plugins["fakes"]["printed"] == ""
    assert plugins["fakes"]["distribution"] == "genbench-fakes" and "model:tiny-ok" in plugins["fakes"]["registered"]
    text = invoke("plugins")
    out, err = text.stdout.splitlines(), text.stderr.splitlines()
    assert all(line.split()[0] in plugins for line in out), out  # each stdout line is one plugin, whole
    assert "note: plugin 'chatty' printed while loading: chatty says hello" in err
    assert any(line.startswith("FAILED plugin 'broken'") for line in err)
    assert any(line.startswith("FAILED plugin 'chatty'") and "Invalid model name 'Bad Name'" in line for line in err)


def test_check_plugin_json_lists_every_check_it_ran(entry_points):
    r = invoke("check-plugin", "tiny-ok", "--task", "digits", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    validate(data, "genbench.check-plugin/1", "genbench check-plugin --json")
    from genbench.testing import MODEL_CHECKS

    assert [c["check"] for c in data["checks"]] == list(MODEL_CHECKS)
    # TinyModel has no logits graph (causality does not apply) and is not cached
    assert [c["status"] for c in data["checks"]] == ["passed"] * 5 + ["skipped"] + ["passed"] * 3 + ["skipped"]
    assert data["conforms"] is True and data["problems"] == [] and data["task"] == "digits"

    r = invoke("check-plugin", "tiny-wrong-shape", "--task", "digits", "--format", "json")
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    validate(data, "genbench.check-plugin/1", "genbench check-plugin --json")
    status = {c["check"]: c["status"] for c in data["checks"]}
    assert status["train/export"] == "passed" and status["onnx"] == "failed" and status["cache"] == "skipped"
    assert [p["check"] for p in data["problems"]] == ["onnx"] and data["conforms"] is False
    # text: every check on stdout, the problems on stderr
    r = invoke("check-plugin", "tiny-wrong-shape", "--task", "digits")
    assert "passed   [tiny-wrong-shape] train/export" in r.stdout and "skipped  [tiny-wrong-shape] samples" in r.stdout
    assert r.stderr.startswith("problem: [tiny-wrong-shape] onnx: ")


def test_check_plugin_json_for_a_plugin_with_load_failures(entry_points):
    r = invoke("check-plugin", "broken", "--json")
    data = json.loads(r.stdout)
    validate(data, "genbench.check-plugin/1", "check-plugin")
    assert r.exit_code == 1 and [(c["check"], c["status"]) for c in data["checks"]] == [("plugin import", "failed")]


def test_cache_list_json(fake_host, tmp_path):
    cache = tmp_path / "cache"
    genbench.run(["tiny-cached"], tasks=["digits"], profile="smoke", host=fake_host, out=tmp_path / "runs",
                 baselines=False, timing=False, device="cpu", executor="inline", cache_dir=cache)
    broken = cache / "models" / ("f" * 64)
    broken.mkdir(parents=True)
    (broken / "manifest.json").write_text("{not json")
    r = invoke("cache", "list", "--cache-dir", str(cache), "--json")
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    validate(data, "genbench.cache-list/1", "genbench cache list --json")
    entries = {e["readable"]: e for e in data["entries"]}
    assert entries[True]["model"] == "tiny-cached" and entries[True]["task"] == "digits" and entries[True]["seed"] == 0
    assert entries[False]["key"] == "f" * 64 and entries[False]["problem"] and entries[False]["model"] is None
    assert data["bytes"] == sum(e["bytes"] for e in data["entries"]) and data["cache_dir"] == str(cache)
    text = invoke("cache", "list", "--cache-dir", str(cache)).stdout
    assert "tiny-cached" in text and "unreadable" in text and text.startswith(f"{cache}: 2 entries")


def test_every_shipped_schema_is_listed_and_loads():
    for name in SCHEMAS:
        schema = load_schema(name)
        assert schema["$schema"].startswith("https://json-schema.org/draft/2020-12")
    assert {"genbench.list/1", "genbench.plugins/1", "genbench.cache-list/1", "genbench.check-plugin/1",
            "genbench.cache-manifest/1"} <= set(SCHEMAS)
