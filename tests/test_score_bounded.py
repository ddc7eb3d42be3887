"""``genbench score`` reads no more than it scores (#24 item 6): a compressed member that inflates to
gigabytes and a huge sparse text file cost what is scored, and every refusal is one line and exit 1."""

import io
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import genbench
from genbench.cli import cli
from genbench.data.digits import load_digits

GIB = 2**30
MIB = 2**20


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _npy_header(shape, descr="<f8", fortran=False) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": fortran, "shape": tuple(shape)})
    return out.getvalue()


def _deflate_bomb(path: Path, header: bytes, zeros_mib: int, member: str = "samples.npy") -> None:
    """An .npz whose one deflated member is ``header`` and then ``zeros_mib`` MiB of zeros, built without
    deflating gigabytes: after a full flush, each MiB of zeros deflates to the same bytes, so they are repeated.
    The archive is an ordinary zip (checked with :mod:`zipfile` below): its sizes and CRC-32 are right."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = comp.compress(header) + comp.flush(zlib.Z_FULL_FLUSH)
    mib = bytes(MIB)
    block = comp.compress(mib) + comp.flush(zlib.Z_FULL_FLUSH)
    assert comp.compress(mib) + comp.flush(zlib.Z_FULL_FLUSH) == block
    data = start + block * zeros_mib + comp.flush()
    crc = zlib.crc32(header)
    for _ in range(zeros_mib):
        crc = zlib.crc32(mib, crc)
    size, name = len(header) + zeros_mib * MIB, member.encode()
    assert size < 2**32  # no zip64 needed
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(data), size, len(name), 0) + name
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc, len(data), size, len(name),
                          0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local) + len(data), 0)
    path.write_bytes(local + data + central + end)
    (info,) = zipfile.ZipFile(path).infolist()
    assert info.file_size == size and info.compress_type == zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path).open(info) as f:  # it inflates to what it says
        assert f.read(len(header) + 4096) == header + bytes(4096)


def _score_under_a_memory_cap(args, cap_bytes):
    """``genbench score ARGS`` in a child process whose address space is capped (RLIMIT_AS), importing this
    checkout's genbench: an input read whole fails there with a MemoryError, as on a small machine."""
    resource = pytest.importorskip("resource")
    root = Path(genbench.__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root), "MALLOC_ARENA_MAX": "2", "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("GENBENCH_DEBUG", None)

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (cap_bytes, cap_bytes))

    code = "import sys; from genbench.cli import main; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, "score", *map(str, args)], env=env, preexec_fn=cap,
                          capture_output=True, text=True, timeout=600)


CAP = int(2.5 * GIB)  # a scoring run takes about 1.3 GiB of address space; either bomb, read whole, takes more


@pytest.fixture(scope="module")
def capped(tmp_path_factory, digits):
    """The cap leaves room for an ordinary score run here (else the bombs' tests would prove nothing)."""
    folder = tmp_path_factory.mktemp("capped")
    np.savez(folder / "small.npz", samples=digits.test_x[:100])
    r = _score_under_a_memory_cap([folder / "small.npz", "--task", "digits", "--out", folder / "runs",
                                   "--no-baselines"], CAP)
    if r.returncode != 0:
        pytest.skip(f"an ordinary score run needs more than {CAP / GIB} GiB of address space on this machine: "
                    f"{r.stderr.strip().splitlines()[-1:]}")
    return CAP


def test_a_3_mib_npz_inflating_to_3_gib_scores_its_first_rows_in_bounded_memory(tmp_path, capped):
    n = 3 * GIB // (8 * 8 * 8)  # [n, 8, 8] float64 zeros: 3 GiB
    bomb = tmp_path / "bomb.npz"
    _deflate_bomb(bomb, _npy_header((n, 8, 8)), 3 * 1024)
    assert bomb.stat().st_size < 4 * MIB
    r = _score_under_a_memory_cap([bomb, "--task", "digits", "--out", tmp_path / "runs", "--no-baselines"], capped)
    assert "Traceback" not in r.stderr and "MemoryError" not in r.stderr, r.stderr[-2000:]
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"scored the first 1,347 of {n:,} samples" in r.stdout + r.stderr
    run = genbench.load_run(next((tmp_path / "runs").iterdir()))
    assert run.config["samples"]["supplied"] == n and run.jobs[0].quality["fd"].n == 1347


def test_an_8_gib_sparse_text_file_is_read_no_further_than_is_scored(tmp_path, capped):
    text = tmp_path / "generated.txt"
    with open(text, "wb") as f:
        f.write(b"the quick brown fox jumps over the lazy dog. " * 200)
        f.truncate(8 * GIB)  # sparse: 8 GiB long, a few KiB on disk
    assert text.stat().st_size == 8 * GIB
    r = _score_under_a_memory_cap([text, "--task", "text", "--out", tmp_path / "runs", "--no-baselines"], capped)
    assert "Traceback" not in r.stderr and "MemoryError" not in r.stderr, r.stderr[-2000:]
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"of {8 * GIB:,} bytes" in r.stdout + r.stderr
    run = genbench.load_run(next((tmp_path / "runs").iterdir()))
    scored = run.jobs[0].quality["byte-ngram-jsd"].n
    from genbench.data.text import load_text

    assert scored == len(load_text().train_x) == run.config["samples"]["n"]  # 425,313 on the default corpus
    assert run.config["samples"]["supplied"] == 8 * GIB


# --------------------------------------------------------------------------- headers checked before reading


def test_a_header_is_checked_before_its_rows_are_read(digits, tmp_path, builtins_only, monkeypatch):
    import genbench.score_samples as ss

    cases = {}
    # a wrong shape claiming 10^12 rows: refused from the header, nothing allocated
    _deflate_bomb(tmp_path / "shape.npz", _npy_header((10**12, 3, 8, 8)), 1)
    cases["shape.npz"] = "has shape [1000000000000, 3, 8, 8]; task 'digits' takes [N, 1, 8, 8]"
    # a header claiming more rows than the member holds
    _deflate_bomb(tmp_path / "short.npz", _npy_header((5000, 8, 8)), 1)  # 1 MiB holds 2,048 rows
    cases["short.npz"] = "is truncated: its header says 5,000 samples of shape [1, 8, 8] and float64, but it holds 2,048"
    (tmp_path / "objects.npy").write_bytes(_npy_header((100, 1, 8, 8), descr="|O") + bytes(6400))
    cases["objects.npy"] = "holds Python objects (pickled data)"
    with zipfile.ZipFile(tmp_path / "ints.npz", "w") as zf:
        zf.writestr("x.npy", _npy_header((10**9, 8, 8), descr="<i8"))
    cases["ints.npz"] = "has dtype int64"
    (tmp_path / "pngs").mkdir()  # a PNG that claims 100000x100000 pixels: refused before it is decoded
    ihdr = struct.pack(">I4sII5B", 13, b"IHDR", 100000, 100000, 8, 0, 0, 0, 0)
    (tmp_path / "pngs" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n" + ihdr + bytes(4))
    cases["pngs"] = "0.png is 100000x100000 pixels; task 'digits' images are 8x8"
    for name, words in cases.items():
        r = invoke("score", tmp_path / name, "--task", "digits", "--out", tmp_path / "runs")
        lines = r.output.strip().splitlines()
        assert r.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: "), (name, r.output)
        assert words in lines[0], (name, lines[0])
    # the size cap, checked before allocating
    monkeypatch.setattr(ss, "MAX_READ_MB", 1)
    np.save(tmp_path / "big.npy", np.zeros((1347, 1, 8, 8)))  # 690 KiB: under the cap
    np.save(tmp_path / "fortran.npy", np.asfortranarray(np.zeros((3000, 1, 8, 8))))  # read whole: 1.5 MiB
    r = invoke("score", tmp_path / "fortran.npy", "--task", "digits", "--out", tmp_path / "runs")
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1
    assert "fortran.npy would take 1.5 MiB to read (3,000 samples of float64), over genbench score's cap of 1 MiB; " \
           "save it in C order" in r.output
    assert not (tmp_path / "runs").exists()
    x, info = ss.load_samples(tmp_path / "big.npy", digits)
    assert x.shape == (1347, 1, 8, 8) and info["supplied"] == 1347


def test_only_the_scored_rows_are_read_and_they_are_the_right_ones(digits, tmp_path):
    import genbench.score_samples as ss

    x = np.concatenate([digits.test_x] * 23)[:10_000].astype(np.float64)
    x[5000, 0, 0, 0] = np.nan  # not among the rows scored: not read, not refused
    np.savez_compressed(tmp_path / "many.npz", samples=x)
    np.save(tmp_path / "fortran.npy", np.asfortranarray(x[:2000, 0]))  # [N, H, W], Fortran order
    np.save(tmp_path / "big-endian.npy", x[:2000].astype(">f4"))
    for name in ("many.npz", "fortran.npy", "big-endian.npy"):
        loaded, info = ss.load_samples(tmp_path / name, digits)
        assert loaded.shape == (1347, 1, 8, 8) and loaded.dtype == np.float32, name
        assert np.array_equal(loaded, x[:1347].astype(np.float32)), name
    assert info["supplied"] == 2000
    assert ss.load_samples(tmp_path / "many.npz", digits)[1]["supplied"] == 10_000
    # a folder of PNGs: the first ones by name are read, the rest counted
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(60):
        plt.imsave(folder / f"{i:03d}.png", digits.test_x[i, 0], cmap="gray", vmin=0, vmax=1)
    loaded, info = ss.load_samples(folder, digits, limit=55)
    assert loaded.shape == (55, 1, 8, 8) and info["supplied"] == 60
    assert np.abs(loaded - digits.test_x[:55]).max() <= 1 / 255 + 1e-6
    r = genbench.score(tmp_path / "many.npz", task="digits", out=tmp_path / "runs", baselines=False,
                       host=__import__("genbench.plugins", fromlist=["x"]).make_plugin_manager(entry_points=False))
    assert r.jobs[0].quality["fd"].n == 1347 and r.config["samples"]["supplied"] == 10_000
    assert any("scored the first 1,347 of 10,000 samples" in w for w in r.jobs[0].warnings)


def test_text_is_read_up_to_what_is_scored(tmp_path):
    import genbench.score_samples as ss
    from genbench.data.text import load_text

    corpus = load_text()
    limit = len(corpus.train_x)
    body = bytes(corpus.test_x[:1000]) * (limit // 1000 + 5)
    (tmp_path / "long.txt").write_bytes(body)
    x, info = ss.load_samples(tmp_path / "long.txt", corpus)
    assert x.shape == (1, limit) and info["supplied"] == len(body)
    assert bytes(x[0]) == body[:limit]
    x, info = ss.load_samples(body, corpus)  # bytes given: the same first bytes
    assert x.shape == (1, limit) and info["supplied"] == len(body)


def test_a_fifo_named_like_an_array_is_refused_not_read_for_ever(tmp_path, builtins_only):
    """A FIFO named ff.npy hung genbench score with no output (an outside tester)."""
    import os

    fifo = tmp_path / "ff.npy"
    os.mkfifo(fifo)
    r = invoke("score", fifo, "--task", "digits", "--out", tmp_path / "runs")
    assert r.exit_code == 1 and "is not a regular file" in r.output and r.output.count("\n") == 1, r.output
