"""Task data is loaded in a child process under the jobs' limits and memory-mapped by the jobs; job processes cannot
be shadowed by a folder named genbench; a job that cannot start within --max-memory says so."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import genbench
from genbench.data import Dataset, load_saved_dataset, save_dataset

TESTS = Path(__file__).parent


@pytest.fixture
def data_host():
    from fakes import FakePlugin, HostileDataPlugin

    from genbench.plugins import make_plugin_manager

    return make_plugin_manager(extra_plugins=[("fakes", FakePlugin), ("data", HostileDataPlugin)], entry_points=False)


def test_hostile_task_loaders_fail_their_tasks_jobs_and_the_run_goes_on(data_host, tmp_path):
    result = genbench.run(["tiny-ok"], tasks=["digits", "hanging-data", "bomb-data", "not-a-dataset"],
                          profile="smoke", host=data_host, out=tmp_path, baselines=False, device="cpu", timing=False,
                          timeout=20, max_memory=1.5)  # generous: the good task must load under heavy load too
    jobs = {j.task: j for j in result.jobs}
    assert jobs["digits"].status == "ok"
    hang, bomb, wrong = jobs["hanging-data"].error, jobs["bomb-data"].error, jobs["not-a-dataset"].error
    assert hang.phase == "data" and hang.type == "Timeout" and "loading task 'hanging-data' took more than 20 s" in \
        hang.message
    assert bomb.type == "MemoryError" and "--max-memory 1.5 GiB" in bomb.message and "inflates" in bomb.message
    assert "returned dict, expected genbench.data.Dataset" in wrong.message
    assert not (tmp_path / result.run_id / ".data").exists()


def test_a_task_whose_data_fails_names_the_jobs_it_fails_in_one_line(data_host, tmp_path):
    lines = []
    result = genbench.run(["tiny-ok", "tiny-cached"], tasks=["not-a-dataset"], profile="smoke", host=data_host,
                          out=tmp_path, baselines=False, device="cpu", timing=False, echo=lines.append)
    assert [j.status for j in result.jobs] == ["failed", "failed"]
    (failed,) = [line for line in lines if "FAILED" in line]
    assert failed.startswith("  FAILED  tiny-ok, tiny-cached on not-a-dataset in data: "), failed
    from genbench.runner import failure_lines

    assert failure_lines(result) == [failed]  # what --quiet prints


def test_a_job_that_cannot_start_within_its_memory_limit_gets_a_hint(fake_host, tmp_path):
    job = genbench.run(["tiny-ok"], tasks=["digits"], profile="smoke", host=fake_host,
                       out=tmp_path, baselines=False, device="cpu", timing=False, max_memory=0.2).jobs[0]
    assert job.status == "failed", job
    assert "--max-memory 0.2 GiB" in job.error.message, job.error


def test_a_saved_dataset_round_trips_and_is_memory_mapped(tmp_path):
    from genbench.data.points import load_ring8

    ring = load_ring8()
    assert save_dataset(ring, tmp_path / "ring8")
    back = load_saved_dataset(tmp_path / "ring8")
    assert back.sha256 == ring.sha256 and back.describe() == ring.describe()
    assert isinstance(back.train_x, np.memmap) and not back.train_x.flags.writeable
    assert np.array_equal(back.meta["centers"], ring.meta["centers"]) and back.meta["sigma"] == ring.meta["sigma"]
    assert np.array_equal(back.train_y, ring.train_y)
    odd = Dataset("odd", "points", (2,), ring.train_x, ring.test_x, meta={"f": lambda: 0})
    assert save_dataset(odd, tmp_path / "odd") is False and not (tmp_path / "odd").exists()  # jobs load it themselves


def test_a_folder_named_genbench_in_the_working_directory_does_not_shadow_the_package(tmp_path):
    work = tmp_path / "work"
    (work / "genbench").mkdir(parents=True)
    (work / "genbench" / "__init__.py").write_text("SHADOW = 'a package of the same name, not genbench'\n")
    script = tmp_path / "scripts" / "run.py"
    script.parent.mkdir()
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        import genbench
        from fakes import FakePlugin
        from genbench.plugins import make_plugin_manager
        if __name__ == "__main__":
            host = make_plugin_manager(extra_plugins=[("fakes", FakePlugin)], entry_points=False)
            result = genbench.run(["tiny-ok"], tasks=["digits"], profile="smoke", host=host, out="runs",
                                  baselines=False, device="cpu", timing=False)
            print(result.jobs[0].status, result.jobs[0].error)
    """))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(script)], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "ok None", proc.stdout
    assert list((work / "runs").glob("*/run.json"))  # relative paths still mean the working directory


def test_a_compressed_idx_file_is_never_inflated_past_its_header(tmp_path):
    import gzip
    import struct
    import zlib

    from genbench.data.mnist import read_idx
    from genbench.errors import DataError

    bomb = tmp_path / "bomb-idx3-ubyte.gz"
    stream = zlib.compressobj(1, zlib.DEFLATED, 31)  # gzip framing
    with open(bomb, "wb") as f:
        f.write(stream.compress(bytes([0, 0, 8, 3]) + struct.pack(">3I", 2, 28, 28)))
        for _ in range(16):  # 256 MiB of zeros behind a header that declares 1,568 bytes
            f.write(stream.compress(bytes(2**24)))
        f.write(stream.flush())
    assert bomb.stat().st_size < 2**21
    with pytest.raises(DataError, match="longer than its header says"):
        read_idx(bomb)
    huge = tmp_path / "huge-idx3-ubyte.gz"
    huge.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">3I", 60000, 2**16, 2**16)))
    with pytest.raises(DataError, match="more than the 2 GiB genbench reads from one IDX file"):
        read_idx(huge)


def test_a_unit_that_cannot_start_within_its_memory_limit_gets_a_hint(fake_host, tmp_path):
    from genbench.config import RunConfig
    from genbench.executors import BuildUnit, JobSpec
    from genbench.executors.local import run_in_process

    config = RunConfig(profile="smoke", device="cpu", max_memory=0.2, timing=False)
    job = JobSpec(fake_host.registry.model("tiny-ok"), fake_host.registry.dataset("digits"), config, "cpu",
                  tmp_path / "jobs" / "tiny-ok__digits__cpu", ())
    result = run_in_process(BuildUnit(job, 0), timeout=60)
    assert result.status == "failed" and result.error.phase in ("start", "load", "data"), result.error
    assert "--max-memory 0.2 GiB" in result.error.message and "raise it" in result.error.message, result.error
