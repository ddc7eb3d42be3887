"""Spec validation and the typed registry tables, filled through fake in-process plugins."""

from __future__ import annotations

import types

import pytest

import genbench
from genbench.errors import PluginError, SpecError, UnknownNameError
from genbench.plugins import DISABLE_ENV, make_plugin_manager
from genbench.registry import Table, load_object, suggest
from genbench.types import DatasetSpec, MetricSpec, ModelSpec, ReporterSpec


@pytest.fixture(autouse=True)
def _no_disable_env(monkeypatch):
    monkeypatch.delenv(DISABLE_ENV, raising=False)


def model(name: str = "gan-mlp", **kw) -> ModelSpec:
    fields = dict(family="gan", tasks=("image",), cls="fake_pkg.models:Gan", description="A fake model")
    fields.update(kw)
    return ModelSpec(name, **fields)


def models_plugin(*specs) -> types.SimpleNamespace:
    """A plugin object whose ``genbench_register_models`` hook registers ``specs``."""

    @genbench.hookimpl
    def genbench_register_models(register):
        for spec in specs:
            register(spec)

    return types.SimpleNamespace(genbench_register_models=genbench_register_models)


class FakePlugin:
    """A class-based plugin (hooks as methods of an instance)."""

    @genbench.hookimpl
    def genbench_register_models(self, register):
        register(model("vae-conv", family="vae", tasks=["image", "points"]))

    @genbench.hookimpl
    def genbench_register_datasets(self, register):
        register(DatasetSpec("fake-points", "points", "fake_pkg.data:load", "Fake 2-D points"))


# --------------------------------------------------------------------------- registration


def test_valid_plugin_spec_is_registered_with_plugin_filled_in():
    host = make_plugin_manager([("fake", models_plugin(model()))], entry_points=False, builtins=False)
    assert host.failures == []
    spec = host.registry.model("gan-mlp")
    assert spec.plugin == "fake" and spec.plugin_version == "0"
    assert spec.family == "gan" and spec.cls == "fake_pkg.models:Gan"
    assert "gan-mlp" in host.registry.models
    assert host.registry.models.names() == ["gan-mlp"]
    info = {p.name: p for p in host.plugins}["fake"]
    assert info.registered == ("model:gan-mlp",)


def test_class_instance_plugin_registers_several_kinds():
    host = make_plugin_manager([("fake", FakePlugin())], entry_points=False, builtins=False)
    assert host.failures == []
    spec = host.registry.model("vae-conv")
    assert spec.tasks == ("image", "points")  # list normalised to a tuple
    assert spec.plugin == "fake"
    assert host.registry.dataset("fake-points").kind == "points"
    assert host.registry.dataset("fake-points").plugin == "fake"


def test_unknown_model_name_is_one_line_with_suggestion():
    host = make_plugin_manager([("fake", models_plugin(model(), model("vae-mlp")))], entry_points=False)
    with pytest.raises(UnknownNameError) as info:
        host.registry.model("gam-mlp")
    msg = str(info.value)
    assert "\n" not in msg
    assert "Did you mean" in msg and "'gan-mlp'" in msg
    assert "Available:" in msg and "baseline-gaussian" in msg and "vae-mlp" in msg
    assert msg.index("Did you mean") < msg.index("Available:")
    assert isinstance(info.value, KeyError)  # still catchable as a KeyError


def test_unknown_name_without_close_match_and_empty_table():
    host = make_plugin_manager([("fake", models_plugin(model()))], entry_points=False, builtins=False)
    with pytest.raises(UnknownNameError) as info:
        host.registry.model("zzzzzz")
    assert "Did you mean" not in str(info.value) and "Available: gan-mlp" in str(info.value)
    with pytest.raises(UnknownNameError, match="Available: none"):
        host.registry.dataset("digits")


def test_duplicate_model_name_from_second_plugin():
    first = models_plugin(model(description="First"))
    second = models_plugin(model(description="Second"), model("gan-dc"))
    host = make_plugin_manager([("first", first), ("second", second)], entry_points=False, builtins=False)
    assert len(host.failures) == 1
    failure = host.failures[0]
    assert failure.plugin == "second" and failure.phase == "register"
    assert "'first'" in failure.message and "'second'" in failure.message and "gan-mlp" in failure.message
    spec = host.registry.model("gan-mlp")
    assert spec.plugin == "first" and spec.description == "First"
    assert host.registry.model("gan-dc").plugin == "second"  # the rest of the plugin still loads


# --------------------------------------------------------------------------- malformed specs


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "Bad_Name"},
        {"name": "../x"},
        {"name": ""},
        {"name": "gan--mlp"},
        {"tasks": ()},
        {"tasks": ("Audio",)},  # neither a kind nor a task name
        {"tasks": ("image", "video clips")},
        {"tasks": ("image", 3)},
        {"tasks": None},
        {"cls": "no_colon_here"},
        {"cls": "pkg.mod:"},
        {"cls": "pkg mod:Class"},
        {"description": "two\nlines"},
        {"description": "   "},
        {"family": "Not A Family"},
    ],
    ids=lambda kw: next(iter(kw)) + "=" + repr(next(iter(kw.values()))),
)
def test_malformed_model_spec_raises_spec_error(kwargs):
    fields = dict(name="gan-mlp", family="gan", tasks=("image",), cls="fake_pkg.models:Gan", description="ok")
    fields.update(kwargs)
    with pytest.raises(SpecError):
        ModelSpec(**fields)


def test_single_string_task_is_accepted_as_one_kind():
    assert model(tasks="image").tasks == ("image",)


@pytest.mark.parametrize(
    "make",
    [
        lambda: DatasetSpec("Bad", "image", "pkg:load", "x"),
        lambda: DatasetSpec("ok", "audio", "pkg:load", "x"),
        lambda: DatasetSpec("ok", "image", "pkg.load", "x"),
        lambda: MetricSpec("fd", (), "pkg:make", "", False, "x"),
        lambda: MetricSpec("fd", ("image",), "pkg:make", "", "no", "x"),
        lambda: MetricSpec("fd", ("image",), "pkg", "", False, "x"),
        lambda: ReporterSpec("md", "pkg.write", "x"),
        lambda: ReporterSpec("md", "pkg:write", "a\nb"),
    ],
)
def test_malformed_other_specs_raise_spec_error(make):
    with pytest.raises(SpecError):
        make()


def test_spec_error_is_a_value_error():
    with pytest.raises(ValueError):
        model(name="Bad_Name")


def test_non_spec_registration_is_recorded_and_others_load():
    bad = models_plugin({"name": "dict-model"}, model("ok-model"))
    host = make_plugin_manager([("bad", bad), ("good", models_plugin(model()))], entry_points=False, builtins=False)
    assert [(f.plugin, f.phase) for f in host.failures] == [("bad", "register")]
    assert "ModelSpec" in host.failures[0].message and "dict" in host.failures[0].message
    assert "dict-model" not in host.registry.models
    assert host.registry.model("ok-model").plugin == "bad"
    assert host.registry.model("gan-mlp").plugin == "good"


def test_wrong_spec_type_for_table_is_rejected():
    @genbench.hookimpl
    def genbench_register_datasets(register):
        register(model())  # a ModelSpec handed to the task table

    host = make_plugin_manager([("mixed", types.SimpleNamespace(genbench_register_datasets=genbench_register_datasets))],
                               entry_points=False, builtins=False)
    assert [f.phase for f in host.failures] == ["register"]
    assert "DatasetSpec" in host.failures[0].message
    assert len(host.registry.datasets) == 0 and len(host.registry.models) == 0


# --------------------------------------------------------------------------- Table, suggest, load_object


def test_table_iterates_sorted_and_rejects_duplicates_directly():
    table = Table("model", ModelSpec)
    table.add(model("zeta"), "p", "1.0")
    added = table.add(model("alpha"), "p", "1.0")
    assert added.plugin == "p" and added.plugin_version == "1.0"
    assert [s.name for s in table] == ["alpha", "zeta"] and len(table) == 2
    with pytest.raises(SpecError, match="already"):
        table.add(model("alpha"), "q", "2.0")
    assert table.get("alpha").plugin == "p"


def test_suggest():
    assert suggest("gam-mlp", ["gan-mlp", "baseline-gaussian"]) == " Did you mean 'gan-mlp'?"
    assert suggest("qqq", ["gan-mlp"]) == ""
    assert suggest("x", []) == ""


def test_load_object_resolves_lazy_paths_and_reports_failures():
    assert load_object("genbench.metrics.frechet:frechet_distance").__name__ == "frechet_distance"
    assert load_object("genbench.types:ModelSpec.to_dict") is ModelSpec.to_dict
    with pytest.raises(PluginError, match="no_such_module_xyz") as info:
        load_object("no_such_module_xyz:thing", owner="model 'x'")
    assert "model 'x'" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(PluginError, match="AttributeError"):
        load_object("genbench.types:NoSuchClass")
