import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # fakes.py is imported by lazy "fakes:Class" paths


@pytest.fixture
def fake_host():
    from fakes import FakePlugin, TextPlugin

    from genbench.plugins import make_plugin_manager

    return make_plugin_manager(extra_plugins=[("fakes", FakePlugin), ("text-fakes", TextPlugin)], entry_points=False)


@pytest.fixture(autouse=True)
def _private_model_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own model cache: no test sees another's trained models, or the user's ~/.cache."""
    monkeypatch.setenv("GENBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("model-cache")))


@pytest.fixture(autouse=True)
def _unsandboxed_builds_by_default(monkeypatch):
    """Build processes unsandboxed unless a test asks (``sandbox=``): bwrap starts a fresh interpreter per build
    (some 2.5 s each, hundreds of builds here), and many fakes report through files under /tmp, which a
    sandboxed build cannot see. The sandbox has tests of its own (test_sandbox.py), and the hostile-plugin
    tests (test_integrity.py) run with the default, ``auto``."""
    monkeypatch.setenv("GENBENCH_SANDBOX", "none")


@pytest.fixture(autouse=True)
def _small_gemm_ceiling(monkeypatch):
    """Runs in tests measure the GEMM ceiling at small sizes: at 4096² one call is some 0.7 s on two cores, and
    hundreds of test runs time models. The real sizes are measured by tests/test_timing.py's ceiling test."""
    monkeypatch.setattr("genbench.runtime.flops.CEILING_SIZES", ((128, 1), (256, 1)))


@pytest.fixture(autouse=True)
def _stores_references_again():
    """An inline run's build marks the test process as one that ran plugin code, after which it stores no
    reference (genbench.features.reference.plugin_code_runs_here); each test starts unmarked, as a fresh
    process would."""
    from genbench.features import reference

    reference._PLUGIN_CODE_RAN = False
    yield
    reference._PLUGIN_CODE_RAN = False


@pytest.fixture
def builtins_only(monkeypatch):
    """The CLI sees genbench's own plugin only: no installed entry point is loaded."""
    import genbench.plugins as plugins

    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [])
