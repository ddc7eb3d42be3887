"""Task text, the logits-graph likelihood (perplexity, bits per byte) and genbench's AR sampler."""

import math

import numpy as np
import pytest

import genbench
from genbench.metrics.likelihood import cross_entropy, text_windows
from genbench.runtime.likelihood import text_cross_entropy
from genbench.runtime.sampler import sample_autoregressive, sample_next


def _run(host, models, tmp_path, **kw):
    return genbench.run(models, tasks=["text"], profile="smoke", host=host, out=tmp_path, baselines=False,
                        device="cpu", timing=False, **kw)


def test_default_corpus_ships_with_python_and_is_named_by_hash():
    from genbench.data.text import load_text

    a, b = load_text(), load_text()
    assert a.kind == "text" and a.vocab == 256 and a.train_x.dtype == np.uint8
    assert len(a.train_x) > 300_000 and len(a.test_x) > 20_000
    assert a.sha256 == b.sha256 and "sha256" in a.source and "pydoc_data.topics" in a.source
    np.testing.assert_array_equal(a.test_x, b.test_x)


def test_text_file_corpus_and_its_errors(tmp_path):
    from genbench.data.text import load_text
    from genbench.errors import DataError

    f = tmp_path / "c.txt"
    f.write_bytes(b"abcdefghij" * 100)
    ds = load_text(text_file=f)
    assert len(ds.train_x) == 900 and len(ds.test_x) == 100
    f.write_bytes(b"")
    with pytest.raises(DataError, match="is empty"):
        load_text(text_file=f)


def test_windows_predict_every_byte_after_the_first_exactly_once():
    stream = np.arange(1000) % 256
    windows = text_windows(stream, 128)
    targets = np.concatenate([y for _, y in windows])
    np.testing.assert_array_equal(targets, stream[1:])
    for x, y in windows:
        assert len(x) == len(y) <= 128
        np.testing.assert_array_equal(x[1:], y[:-1])


def test_cross_entropy_matches_torch():
    import torch

    rng = np.random.default_rng(0)
    logits = rng.standard_normal((3, 7, 11)).astype(np.float32) * 5
    targets = rng.integers(0, 11, (3, 7))
    expected = torch.nn.functional.cross_entropy(torch.from_numpy(logits).reshape(-1, 11),
                                                 torch.from_numpy(targets).reshape(-1), reduction="none")
    np.testing.assert_allclose(cross_entropy(logits, targets).ravel(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_uniform_logits_give_perplexity_v_and_8_bits_per_byte(fake_host, tmp_path):
    job = _run(fake_host, ["text-uniform"], tmp_path).jobs[0]
    assert job.status == "ok", job.error
    assert job.quality["ppl"].value == pytest.approx(256.0, rel=1e-12)
    assert job.quality["bpb"].value == pytest.approx(8.0, rel=1e-12)
    assert job.quality["bpb"].stderr == pytest.approx(0.0, abs=1e-9)
    assert "disjoint windows of 64 bytes" in job.quality["bpb"].params["windows"]
    assert (tmp_path / job.files["samples_txt"].split("/", 1)[0]).exists() or job.files["samples_txt"]


def test_perplexity_helper_is_the_same_for_onnx_and_torch_on_the_same_data():
    import torch

    class Bigram(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.table = torch.nn.Parameter(torch.randn(256, 256, generator=torch.Generator().manual_seed(0)))

        def forward(self, tokens):
            return self.table[tokens]

    m = Bigram().eval()
    stream = np.frombuffer(b"the quick brown fox jumps over the lazy dog " * 30, np.uint8)
    from genbench.runtime.sampler import torch_logits_fn

    ce, windows = text_cross_entropy(torch_logits_fn(m), stream, 50, 256)
    with torch.no_grad():
        direct = torch.nn.functional.cross_entropy(m.table[torch.from_numpy(stream[:-1].astype(np.int64))],
                                                   torch.from_numpy(stream[1:].astype(np.int64)), reduction="none")
    np.testing.assert_allclose(ce, direct.numpy(), rtol=1e-5, atol=1e-6)
    assert windows.max() + 1 == math.ceil((len(stream) - 1) / 50)


@pytest.mark.parametrize("model, phase, words", [
    ("text-wrong-vocab", "validate", ["predicts 300 values per position", "256"]),
    ("text-short-context", "validate", ["sequence", "64", "declared context_length"]),
])
def test_bad_logits_graphs_fail_their_job(fake_host, tmp_path, model, phase, words):
    result = _run(fake_host, [model, "text-uniform"], tmp_path)
    job = next(j for j in result.jobs if j.model == model)
    assert job.status == "failed" and job.error.phase == phase, job.error
    for w in words:
        assert w in job.error.message, job.error.message
    assert "\n" not in job.error.message
    assert next(j for j in result.jobs if j.model == "text-uniform").status == "ok"


def test_corpus_shorter_than_a_context_window_fails_the_job(fake_host, tmp_path):
    f = tmp_path / "short.txt"
    f.write_bytes(b"x" * 200)  # 20 held-out bytes < 64 + 1
    job = _run(fake_host, ["text-uniform"], tmp_path, text_file=f).jobs[0]
    assert job.status == "failed" and "shorter than one context window" in job.error.message


def test_empty_text_file_fails_the_text_jobs_with_one_line(fake_host, tmp_path):
    f = tmp_path / "empty.txt"
    f.write_bytes(b"")
    result = _run(fake_host, ["text-uniform"], tmp_path, text_file=f)
    job = result.jobs[0]
    assert job.status == "failed" and job.error.phase == "data" and "is empty" in job.error.message


def test_sampler_top_k_temperature_and_seed():
    rng = np.random.default_rng(0)
    logits = np.log(np.array([[0.1, 0.2, 0.7]] * 20000))
    draws = sample_next(logits, rng)
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / len(draws), [0.1, 0.2, 0.7], atol=0.015)
    assert (sample_next(logits, rng, top_k=1) == 2).all()
    assert (sample_next(logits, rng, temperature=0) == 2).all()
    two = sample_next(logits, rng, top_k=2)
    assert set(np.unique(two)) == {1, 2}

    def fn(tokens):
        return np.tile(np.log(np.array([0.5, 0.25, 0.25])), (*tokens.shape, 1))

    a = sample_autoregressive(fn, np.zeros((4, 2), np.int64), 10, context_length=5, rng=np.random.default_rng(3))
    b = sample_autoregressive(fn, np.zeros((4, 2), np.int64), 10, context_length=5, rng=np.random.default_rng(3))
    assert a.shape == (4, 12)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="expected"):
        sample_autoregressive(fn, np.zeros((1, 1), np.int64), 1, context_length=5, rng=np.random.default_rng(0), vocab=7)


@pytest.mark.integration
def test_text_baselines_are_scored_by_the_same_code(tmp_path):
    result = genbench.run(["baseline-unigram", "baseline-bigram"], tasks=["text"], profile="smoke", out=tmp_path,
                          device="cpu", timing=False)
    jobs = {j.model: j for j in result.jobs}
    uni, bi = jobs["baseline-unigram"].quality["bpb"], jobs["baseline-bigram"].quality["bpb"]
    assert jobs["baseline-bigram"].status == "ok"
    assert 3.0 < bi.value < uni.value < 5.5
    assert jobs["baseline-bigram"].export["graphs"]["logits"]["parity_max_abs_diff"] < 1e-5


def test_the_readme_gives_the_default_corpus_held_out_share_it_has():
    """The README said ~10% held out; every 10th whole 8 KiB block of 57 is 5 blocks, 8.8%."""
    import re
    from pathlib import Path

    from genbench.data.text import BLOCK, HELD_OUT_EVERY, default_corpus

    train, test, _ = default_corpus()
    blocks = -(-(len(train) + len(test)) // BLOCK)
    assert len(test) == (blocks // HELD_OUT_EVERY) * BLOCK
    share = len(test) / (len(train) + len(test))
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    (line,) = [row for row in readme.splitlines() if row.startswith("| `text` |")]
    quoted = float(re.search(r"every 10th held out \(on Python [\d.]+: .*?([\d.]+)%\)", line).group(1))
    assert "~10%" not in line and abs(quoted - 100 * share) < 0.6  # the corpus differs a little between Pythons
