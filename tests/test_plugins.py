"""The plugin manager: isolation of broken plugins, disabling, entry points, built-ins, hook contract."""

from __future__ import annotations

import inspect
import subprocess
import sys
import types

import pytest

import genbench
from genbench import hookspecs
from genbench.plugins import DISABLE_ENV, ENTRY_POINT_GROUP, make_plugin_manager
from genbench.types import ModelSpec


@pytest.fixture(autouse=True)
def _no_disable_env(monkeypatch):
    monkeypatch.delenv(DISABLE_ENV, raising=False)


def model(name: str) -> ModelSpec:
    return ModelSpec(name, "gan", ("image",), "fake_pkg.models:Model", f"Fake model {name}")


def models_plugin(*names: str) -> types.SimpleNamespace:
    @genbench.hookimpl
    def genbench_register_models(register):
        for n in names:
            register(model(n))

    return types.SimpleNamespace(genbench_register_models=genbench_register_models)


def raising_plugin(exc: BaseException) -> types.SimpleNamespace:
    @genbench.hookimpl
    def genbench_register_models(register):
        register(model("before-raise"))
        raise exc

    return types.SimpleNamespace(genbench_register_models=genbench_register_models)


def failures_by_plugin(host) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in host.failures:
        out.setdefault(f.plugin, []).append(f)
    return out


# --------------------------------------------------------------------------- broken plugins are isolated


def test_plugin_whose_hook_raises_is_recorded_and_others_load():
    host = make_plugin_manager(
        [("broken", raising_plugin(RuntimeError("boom"))), ("good", models_plugin("good-model"))],
        entry_points=False, builtins=False,
    )
    assert len(host.failures) == 1
    failure = host.failures[0]
    assert (failure.plugin, failure.phase) == ("broken", "register")
    assert "RuntimeError" in failure.message and "boom" in failure.message
    assert "genbench_register_models" in failure.message
    assert "broken" in str(failure) and "register" in str(failure)
    assert failure.to_dict() == {"plugin": "broken", "distribution": "broken", "phase": "register",
                                 "message": failure.message}
    assert host.registry.model("good-model").plugin == "good"
    # what was registered before the exception stays registered
    assert host.registry.model("before-raise").plugin == "broken"


def test_hook_raising_system_exit_is_recorded_not_propagated():
    host = make_plugin_manager([("exiting", raising_plugin(SystemExit(3))), ("good", models_plugin("good-model"))],
                               entry_points=False, builtins=False)
    assert [(f.plugin, f.phase) for f in host.failures] == [("exiting", "register")]
    assert "SystemExit" in host.failures[0].message
    assert "good-model" in host.registry.models


def test_misspelled_hook_is_a_validate_failure_with_suggestion():
    @genbench.hookimpl
    def genbench_register_model(register):  # missing the final "s"
        register(model("never"))

    typo = types.SimpleNamespace(genbench_register_model=genbench_register_model)
    host = make_plugin_manager([("typo", typo), ("good", models_plugin("good-model"))],
                               entry_points=False, builtins=False)
    assert [(f.plugin, f.phase) for f in host.failures] == [("typo", "validate")]
    msg = host.failures[0].message
    assert "genbench_register_model" in msg
    assert "Did you mean 'genbench_register_models'" in msg  # the closest hook first
    assert "never" not in host.registry.models
    assert "good-model" in host.registry.models
    assert "typo" not in [p.name for p in host.plugins]


def test_object_without_hooks_is_recorded():
    def genbench_register_models(register):  # not decorated with @genbench.hookimpl
        register(model("undecorated"))

    host = make_plugin_manager(
        [("empty", types.SimpleNamespace(genbench_register_models=genbench_register_models)),
         ("nothing", object()), ("good", models_plugin("good-model"))],
        entry_points=False, builtins=False,
    )
    assert [(f.plugin, f.phase) for f in host.failures] == [("empty", "validate"), ("nothing", "validate")]
    assert all("hookimpl" in f.message for f in host.failures)
    assert "undecorated" not in host.registry.models
    assert "good-model" in host.registry.models


def test_hook_with_unknown_argument_is_a_validate_failure():
    @genbench.hookimpl
    def genbench_register_models(register, extra):
        register(model("never"))

    host = make_plugin_manager([("badsig", types.SimpleNamespace(genbench_register_models=genbench_register_models))],
                               entry_points=False, builtins=False)
    assert [(f.plugin, f.phase) for f in host.failures] == [("badsig", "validate")]
    assert "never" not in host.registry.models


def test_same_plugin_object_twice_is_recorded():
    plugin = models_plugin("once")
    host = make_plugin_manager([("a", plugin), ("b", plugin)], entry_points=False, builtins=False)
    assert [(f.plugin, f.phase) for f in host.failures] == [("b", "validate")]
    assert host.registry.model("once").plugin == "a"


# --------------------------------------------------------------------------- disabling


def test_disabled_argument_blocks_plugin():
    host = make_plugin_manager([("fake", models_plugin("fake-model")), ("kept", models_plugin("kept-model"))],
                               entry_points=False, disabled=["fake"])
    assert host.disabled == ["fake"]
    assert "fake-model" not in host.registry.models
    assert "kept-model" in host.registry.models
    assert "fake" not in [p.name for p in host.plugins]
    assert host.failures == []


def test_disabled_from_environment(monkeypatch):
    monkeypatch.setenv(DISABLE_ENV, "fake,other")
    host = make_plugin_manager([("fake", models_plugin("fake-model")), ("kept", models_plugin("kept-model"))],
                               entry_points=False, disabled=None)
    assert "fake" in host.disabled and "other" not in host.disabled  # "other" is not installed
    assert "fake-model" not in host.registry.models
    assert "kept-model" in host.registry.models
    assert "baseline-gaussian" in host.registry.models  # built-ins unaffected


def test_explicit_disabled_overrides_environment(monkeypatch):
    monkeypatch.setenv(DISABLE_ENV, "fake")
    host = make_plugin_manager([("fake", models_plugin("fake-model"))], entry_points=False, disabled=[])
    assert host.disabled == []
    assert "fake-model" in host.registry.models


# --------------------------------------------------------------------------- entry points


class FakeEntryPoint:
    def __init__(self, name: str, load):
        self.name = name
        self.dist = None
        self.group = ENTRY_POINT_GROUP
        self._load = load

    def load(self):
        return self._load()


def _patch_entry_points(monkeypatch, eps):
    seen_groups = []

    def entry_points(**kwargs):
        seen_groups.append(kwargs.get("group"))
        return list(eps)

    monkeypatch.setattr(genbench.plugins.metadata, "entry_points", entry_points)
    return seen_groups


def test_entry_point_import_failure_is_recorded_and_good_one_loads(monkeypatch):
    good_module = types.ModuleType("fake_good_plugin")
    good = models_plugin("ep-model")
    good_module.genbench_register_models = good.genbench_register_models

    def broken():
        raise ImportError("No module named 'torchvision_nightly'")

    groups = _patch_entry_points(monkeypatch, [FakeEntryPoint("zz-broken", broken),
                                               FakeEntryPoint("aa-good", lambda: good_module)])
    host = make_plugin_manager()
    assert groups == [ENTRY_POINT_GROUP]
    assert [(f.plugin, f.distribution, f.phase) for f in host.failures] == [("zz-broken", "zz-broken", "import")]
    assert "ImportError" in host.failures[0].message and "torchvision_nightly" in host.failures[0].message
    spec = host.registry.model("ep-model")
    assert spec.plugin == "aa-good" and spec.plugin_version == "0"
    assert "baseline-gaussian" in host.registry.models
    assert [p.name for p in host.plugins] == ["genbench", "aa-good"]


def test_entry_point_load_raising_system_exit_is_recorded(monkeypatch):
    def exits():
        raise SystemExit("plugin called sys.exit at import")

    _patch_entry_points(monkeypatch, [FakeEntryPoint("exiting", exits),
                                      FakeEntryPoint("good", lambda: models_plugin("ep-model"))])
    host = make_plugin_manager()  # must not raise SystemExit
    assert [(f.plugin, f.phase) for f in host.failures] == [("exiting", "import")]
    assert "SystemExit" in host.failures[0].message
    assert "ep-model" in host.registry.models


def test_disabled_entry_point_is_never_loaded(monkeypatch):
    loaded = []
    _patch_entry_points(monkeypatch, [FakeEntryPoint("heavy", lambda: loaded.append("heavy") or models_plugin("x"))])
    host = make_plugin_manager(disabled=["heavy"])
    assert loaded == []
    assert host.disabled == ["heavy"]


def test_entry_points_false_does_not_query_metadata(monkeypatch):
    groups = _patch_entry_points(monkeypatch, [])
    make_plugin_manager(entry_points=False)
    assert groups == []


# --------------------------------------------------------------------------- built-ins and real plugins


def test_builtins_register_tasks_metrics_reporters_models():
    host = make_plugin_manager(entry_points=False, disabled=[])
    assert host.failures == []
    assert {"digits", "mnist"} <= set(host.registry.datasets.names())
    assert "fd" in host.registry.metrics
    assert {"markdown", "csv"} <= set(host.registry.reporters.names())
    assert {"baseline-gaussian", "baseline-train-copy"} <= set(host.registry.models.names())
    assert host.registry.model("baseline-gaussian").plugin == "genbench"
    assert host.registry.dataset("mnist").loader == "genbench.data.mnist:load_mnist"
    assert [p.name for p in host.plugins] == ["genbench"]


def test_builtins_false_gives_empty_registry():
    host = make_plugin_manager(entry_points=False, builtins=False)
    assert len(host.registry.models) == len(host.registry.datasets) == 0
    assert host.plugins == [] and host.failures == []


@pytest.mark.integration
def test_real_entry_points_find_gan_plugin():
    host = make_plugin_manager(disabled=[])
    spec = host.registry.model("gan-mlp")
    assert spec.plugin == "genbench-gan"
    assert spec.plugin_version
    assert spec.family == "gan" and "image" in spec.tasks
    assert not [f for f in host.failures if f.plugin == "gan"]


# --------------------------------------------------------------------------- the hook contract


def test_every_hook_is_documented_and_declared():
    declared = {name for name, obj in vars(hookspecs).items()
                if inspect.isfunction(obj) and hasattr(obj, hookspecs.PROJECT_NAME + "_spec")}
    assert declared == set(hookspecs.HOOK_NAMES)
    for name in hookspecs.HOOK_NAMES:
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc and len(doc.strip()) > 20, name
        assert "register" in doc, name
    pm = make_plugin_manager(entry_points=False).pm
    for name in hookspecs.HOOK_NAMES:
        assert getattr(pm.hook, name).spec is not None


def test_importing_genbench_and_building_plugins_does_not_import_torch():
    code = ("import genbench, sys; from genbench.plugins import make_plugin_manager; "
            "make_plugin_manager(); assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------- registration in a child process


def _install_plugin(site, name: str, source: str) -> None:
    """A real installed distribution on ``site`` (a sys.path directory): its module and an entry point."""
    (site / f"{name}.py").write_text(source)
    info = site / f"{name}-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[genbench]\n{name} = {name}\n")


HOSTILE_AT_IMPORT = '''
import time, numpy, genbench
time.perf_counter = time.monotonic = lambda: 0.0          # a clock that never moves
numpy.mean = lambda *a, **k: 0.0
print("hostile module imported")

@genbench.hookimpl
def genbench_register_models(register):
    register(genbench.ModelSpec(name="hostile-at-import", family="gan", tasks=("image",),
                                cls="nowhere_at_all:Model", description="patches the host at import"))
    register(genbench.ModelSpec(name="baseline-gaussian", family="gan", tasks=("image",),
                                cls="nowhere_at_all:Model", description="takes a built-in's name"))
'''


def test_an_entry_points_module_is_imported_and_registered_in_a_child_never_in_genbench(tmp_path, monkeypatch):
    """What a plugin's module does when imported (patch the clock, numpy) happens in the registration child:
    genbench's own process never imports it, and still gets its specs, checked again here."""
    import sys
    import time

    import numpy as np

    site = tmp_path / "site"
    site.mkdir()
    _install_plugin(site, "hostileatimport", HOSTILE_AT_IMPORT)
    monkeypatch.syspath_prepend(str(site))
    clock, mean = time.monotonic, np.mean
    host = make_plugin_manager()
    assert time.monotonic is clock and np.mean is mean and "hostileatimport" not in sys.modules
    spec = host.registry.model("hostile-at-import")
    assert (spec.plugin, spec.plugin_version, spec.cls) == ("hostileatimport", "0.3", "nowhere_at_all:Model")
    # a name another plugin (here genbench) registered first is refused here, in genbench's own registry
    assert host.registry.model("baseline-gaussian").plugin == "genbench"
    (failure,) = [f for f in host.failures if f.plugin == "hostileatimport"]
    assert failure.phase == "register" and "already registered" in failure.message
    (info,) = [p for p in host.plugins if p.name == "hostileatimport"]
    assert info.registered == ("model:hostile-at-import",) and "hostile module imported" in info.printed


def test_a_plugin_whose_import_hangs_fails_alone_within_its_time_limit(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    _install_plugin(site, "hangsatimport", "import time\ntime.sleep(3600)\n")
    _install_plugin(site, "zzgood", '''
import genbench

@genbench.hookimpl
def genbench_register_models(register):
    register(genbench.ModelSpec(name="after-the-hang", family="gan", tasks=("image",), cls="x:Y", description="d"))
''')
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("GENBENCH_PLUGIN_TIMEOUT", "3")
    host = make_plugin_manager()
    (failure,) = [f for f in host.failures if f.plugin == "hangsatimport"]
    assert failure.phase == "import" and "did not finish within 3 s" in failure.message
    assert host.registry.model("after-the-hang").plugin == "zzgood"
