"""Each job runs in its own process: a plugin that hangs or kills its process fails only its own job."""

import json

import pytest

import genbench


@pytest.mark.parametrize("model, phase, error_type, words", [
    ("tiny-hangs", "train", "Timeout", ["no result after 10 s", "in phase train", "--timeout"]),
    ("tiny-exits", "export", "ProcessDied", ["died during export", "exit code 3"]),
    ("tiny-segfaults", "train", "ProcessDied", ["died during train", "SIGSEGV"]),
    ("tiny-sys-exit", "train", "SystemExit", ["plugin called sys.exit"]),
])
def test_hostile_plugin_fails_its_own_job_and_the_run_goes_on(fake_host, tmp_path, model, phase, error_type, words):
    result = genbench.run([model, "tiny-ok"], tasks=["digits"], profile="smoke", host=fake_host, out=tmp_path,
                          baselines=False, device="cpu", timing=False, timeout=10)
    jobs = {j.model: j for j in result.jobs}
    bad = jobs[model]
    assert bad.status == "failed" and bad.error.phase == phase and bad.error.type == error_type, bad.error
    for w in words:
        assert w in bad.error.message, bad.error.message
    assert jobs["tiny-ok"].status == "ok"
    on_disk = json.loads((tmp_path / result.run_id / "run.json").read_text())
    assert [j["status"] for j in on_disk["jobs"]] == ["failed", "ok"]
    assert (tmp_path / result.run_id / bad.files["error"]).is_file()


def test_inline_and_process_executors_give_the_same_quality(fake_host, tmp_path):
    runs = [genbench.run(["tiny-ok"], tasks=["digits"], profile="smoke", host=fake_host, out=tmp_path, baselines=False,
                         device="cpu", timing=False, executor=e) for e in ("inline", "process")]
    assert runs[0].jobs[0].quality["fd"].value == pytest.approx(runs[1].jobs[0].quality["fd"].value, abs=1e-9)
