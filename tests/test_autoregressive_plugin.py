"""The autoregressive plugin: causal masking, the exported ``logits`` graph, token conventions, training."""

import math
import subprocess
import sys

import numpy as np
import pytest

ar_model = pytest.importorskip("genbench_autoregressive.model", reason="pip install -e plugins/autoregressive")

import torch  # noqa: E402  (after the skip: torch comes with the plugin's dependencies)
import torch.nn.functional as F  # noqa: E402

from genbench import TrainConfig  # noqa: E402
from genbench.data.digits import load_digits  # noqa: E402
from genbench.data.text import load_text  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Train as the harness does by default (--train-threads 1); also fast on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train(cls, data, steps, seed=0):
    m = cls()
    summary = m.train(data, TrainConfig(seed=seed, steps=steps), lambda *a: None)
    return m, summary


@pytest.fixture(scope="module")
def text():
    return load_text()


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def text_untrained(text):
    return _train(ar_model.ByteTransformer, text.training_data(), 0)[0]


@pytest.fixture(scope="module")
def text_trained(text):
    return _train(ar_model.ByteTransformer, text.training_data(), 30)[0]


@pytest.fixture(scope="module")
def pixel_trained(digits):
    return _train(ar_model.PixelTransformer, digits.training_data(), 20)[0]


@pytest.fixture(scope="module")
def models(text_trained, pixel_trained):
    return {"ar-transformer": text_trained, "ar-pixel": pixel_trained}


@pytest.fixture(scope="module")
def bundles(models, tmp_path_factory):
    """Each model exported once (an export takes a few seconds)."""
    return {name: m.export_onnx(tmp_path_factory.mktemp(name)) for name, m in models.items()}


def _held_out_ce(model, test_x, windows=8, context=128):
    """Mean next-byte cross-entropy (nats) over ``windows`` disjoint windows of the held-out bytes."""
    data = torch.from_numpy(np.asarray(test_x, dtype=np.int64))
    starts = np.linspace(0, len(data) - context - 1, windows).astype(int)
    assert np.all(np.diff(starts) >= context + 1)  # disjoint
    w = torch.stack([data[s:s + context + 1] for s in starts])
    with torch.no_grad():
        logits = model.torch_module("logits")(w[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1)).item()


# --------------------------------------------------------------------------- causality


@pytest.mark.parametrize("name", ["ar-transformer", "ar-pixel"])
def test_logits_at_t_do_not_depend_on_tokens_after_t(models, name):
    module = models[name].torch_module("logits")
    vocab, context = module.vocab_in, module.context
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, vocab, (3, context), generator=g)
    with torch.no_grad():
        base = module(tokens)
        for t in (0, 1, context // 2, context - 1):
            changed = tokens.clone()
            changed[:, t] = (changed[:, t] + 1 + torch.randint(0, vocab - 1, (3,), generator=g)) % vocab
            out = module(changed)
            torch.testing.assert_close(out[:, :t], base[:, :t], rtol=0, atol=1e-5)
            assert (out[:, t] - base[:, t]).abs().max() > 1e-4  # position t does see token t


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize("name", ["ar-transformer", "ar-pixel"])
def test_onnx_matches_torch_at_several_batch_and_sequence_sizes(models, bundles, name):
    import onnx
    import onnxruntime as ort

    model, bundle = models[name], bundles[name]
    (graph,) = bundle.graphs
    assert graph.role == "logits" and graph.path == "logits.onnx"
    (tokens_spec,), (logits_spec,) = graph.inputs, graph.outputs
    assert tokens_spec.name == "tokens" and tokens_spec.shape == ("batch", "seq")
    assert tokens_spec.dtype == "int64" and tokens_spec.source == "tokens"
    assert logits_spec.name == "logits" and logits_spec.shape[:2] == ("batch", "seq")

    proto = onnx.load(str(bundle.path("logits")))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "seq"] and all(not d.HasField("dim_value") for d in dims)

    module = model.torch_module("logits")
    assert not module.training
    context = graph.attrs["context_length"]
    session = ort.InferenceSession(str(bundle.path("logits")), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for batch, seq in [(1, 5), (3, 40), (2, context)]:
        tokens = rng.integers(0, tokens_spec.vocab, size=(batch, seq), dtype=np.int64)
        (onnx_out,) = session.run(None, {"tokens": tokens})
        with torch.no_grad():
            torch_out = module(torch.from_numpy(tokens)).numpy()
        assert onnx_out.shape == torch_out.shape == (batch, seq, logits_spec.shape[2])
        np.testing.assert_allclose(onnx_out, torch_out, rtol=1e-4, atol=1e-4)


def test_text_graph_spec(bundles):
    graph = bundles["ar-transformer"].graph("logits")
    assert graph.inputs[0].vocab == 256 and graph.outputs[0].shape == ("batch", "seq", 256)
    assert graph.attrs == {"context_length": 128}


def test_export_and_torch_module_need_training(tmp_path):
    m = ar_model.ByteTransformer()
    with pytest.raises(RuntimeError, match="train"):
        m.export_onnx(tmp_path)
    with pytest.raises(RuntimeError, match="train"):
        m.torch_module("logits")


def test_unknown_role_raises_key_error(text_untrained):
    with pytest.raises(KeyError):
        text_untrained.torch_module("sample")


# --------------------------------------------------------------------------- likelihood and training


def test_untrained_cross_entropy_is_near_uniform(text_untrained, text):
    assert _held_out_ce(text_untrained, text.test_x) == pytest.approx(math.log(256), abs=0.5)


def test_training_lowers_held_out_cross_entropy(text_untrained, text_trained, text):
    untrained, trained = _held_out_ce(text_untrained, text.test_x), _held_out_ce(text_trained, text.test_x)
    assert trained < untrained - 1.0, (trained, untrained)


def test_training_is_deterministic_for_a_seed(text, digits):
    for cls, data, steps in ((ar_model.ByteTransformer, text.training_data(), 6),
                             (ar_model.PixelTransformer, digits.training_data(), 12)):
        a, b = (_train(cls, data, steps, seed=3)[1] for _ in range(2))
        assert len(a.loss_history["loss"]) == 1 and a.steps == steps
        assert a.loss_history == b.loss_history
        c = _train(cls, data, steps, seed=4)[1]
        assert c.loss_history != a.loss_history


def test_steps_and_progress():
    calls = []
    m = ar_model.PixelTransformer()
    summary = m.train(load_digits().training_data(), TrainConfig(seed=0, steps=60), lambda *a: calls.append(a))
    assert [c[0] for c in calls] == [50, 60] and all(c[1] == 60 and set(c[2]) == {"loss"} for c in calls)
    assert summary.log_every == 50 and len(summary.loss_history["loss"]) == 2


# --------------------------------------------------------------------------- pixel token conventions


def test_pixel_tokens_round_trip_on_digits(digits):
    tokens = ar_model.pixel_tokens(digits.train_x, 17)
    assert tokens.dtype == np.int64 and tokens.shape == (len(digits.train_x), 64)
    assert tokens.min() >= 0 and tokens.max() == 16
    np.testing.assert_array_equal(tokens / 16.0, digits.train_x.reshape(len(digits.train_x), -1))


def test_pixel_bos_convention(pixel_trained, bundles, digits):
    tokens = torch.from_numpy(ar_model.pixel_tokens(digits.test_x[:5], 17))
    inputs = ar_model.bos_shift(tokens, 17)
    assert inputs.shape == (5, 64)
    assert (inputs[:, 0] == 17).all() and torch.equal(inputs[:, 1:], tokens[:, :-1])
    with torch.no_grad():
        logits = pixel_trained.torch_module("logits")(inputs)
    assert logits.shape == (5, 64, 17) and logits.dtype == torch.float32
    graph = bundles["ar-pixel"].graph("logits")
    assert graph.attrs == {"context_length": 64, "bos": 17, "levels": 17}
    assert graph.inputs[0].vocab == 18 and graph.outputs[0].shape == ("batch", "seq", 17)


def test_pixel_needs_levels(digits):
    import dataclasses

    data = dataclasses.replace(digits.training_data(), levels=None)
    with pytest.raises(ValueError, match="ar-pixel needs data.levels"):
        ar_model.PixelTransformer().train(data, TrainConfig(steps=1), lambda *a: None)


# --------------------------------------------------------------------------- registration


def test_importing_the_plugin_does_not_import_torch():
    code = "import sys, genbench_autoregressive; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registered_through_the_entry_point():
    from genbench.plugins import make_plugin_manager

    host = make_plugin_manager(disabled=())
    assert not [f for f in host.failures if f.distribution == "genbench-autoregressive"]
    for name, task in (("ar-transformer", "text"), ("ar-pixel", "image")):
        spec = host.registry.models.get(name)
        assert spec.plugin == "genbench-autoregressive" and spec.family == "ar" and spec.tasks == (task,)


def test_perplexity_from_onnx_equals_the_torch_modules_on_the_same_data(tmp_path):
    """The harness's scoring code, run once over the ONNX graph and once over the torch module."""
    import math

    import numpy as np
    import onnxruntime as ort

    from genbench import TrainConfig
    from genbench.data.text import load_text
    from genbench.runtime.likelihood import text_cross_entropy
    from genbench.runtime.sampler import ort_logits_fn, torch_logits_fn

    data = load_text()
    model = ar_model.ByteTransformer()
    model.train(data.training_data(), TrainConfig(seed=0, steps=5), lambda *a: None)
    bundle = model.export_onnx(tmp_path)
    stream = data.test_x[:3000]
    context = bundle.graph("logits").attrs["context_length"]
    ce_onnx, _ = text_cross_entropy(ort_logits_fn(ort.InferenceSession(str(bundle.path("logits")))), stream, context, 256)
    ce_torch, _ = text_cross_entropy(torch_logits_fn(model.torch_module("logits")), stream, context, 256)
    ppl_onnx, ppl_torch = math.exp(ce_onnx.mean()), math.exp(ce_torch.mean())
    assert abs(ppl_onnx - ppl_torch) / ppl_torch < 1e-4
    assert len(ce_onnx) == len(stream) - 1 and np.isfinite(ppl_onnx)
