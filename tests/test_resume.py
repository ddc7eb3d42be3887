"""Nothing is lost: a run killed with SIGKILL is finished by --resume, running only the missing jobs."""

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import genbench
from genbench.errors import ResultsError

MODELS = ["tiny-ok", "tiny-slow", "tiny-nan"]


def test_resume_after_kill_9_runs_only_the_missing_jobs(fake_host, tmp_path):
    out = tmp_path / "runs"
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import genbench
        from fakes import FakePlugin
        from genbench.plugins import make_plugin_manager
        if __name__ == "__main__":
            host = make_plugin_manager(extra_plugins=[("fakes", FakePlugin)], entry_points=False)
            genbench.run({MODELS!r}, tasks=["digits"], profile="smoke", host=host, out={str(out)!r},
                         baselines=False, device="cpu", timing=False)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    run_json = None
    while time.time() < deadline:
        found = list(out.glob("*/run.json"))
        if found and any(j["status"] == "ok" for j in json.loads(found[0].read_text())["jobs"]):
            run_json = found[0]
            break
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    assert run_json is not None, "the first job never finished"
    before = json.loads(run_json.read_text())
    assert before["finished_at"] is None and [j["model"] for j in before["jobs"]] == MODELS
    done = {j["model"]: j for j in before["jobs"] if j["status"] != "pending"}
    assert "tiny-ok" in done and any(j["status"] == "pending" for j in before["jobs"])

    result = genbench.run(resume=run_json.parent, host=fake_host)
    assert [(j.model, j.status) for j in result.jobs] == [("tiny-ok", "ok"), ("tiny-slow", "ok"), ("tiny-nan", "failed")]
    assert result.run_id == before["run_id"] and result.finished_at
    for j in result.jobs:  # the finished jobs were not redone
        if j.model in done:
            assert j.to_dict() == done[j.model]
    saved = json.loads(run_json.read_text())
    assert len(saved["jobs"]) == 3 and len(saved["config"]["resumed_at"]) == 1


def test_resume_of_a_corrupt_run_is_refused_and_the_file_is_kept(tmp_path):
    (tmp_path / "run.json").write_text('{"schema": "genbench.run/1", "jobs": [{"model": ')
    with pytest.raises(ResultsError, match="corrupt or truncated"):
        genbench.run(resume=tmp_path)
    assert (tmp_path / "run.json").read_text() == '{"schema": "genbench.run/1", "jobs": [{"model": '
