"""``genbench run --onnx FILE``: a graph written here with onnx.helper, benchmarked with no plugin."""

import numpy as np
import pytest
from click.testing import CliRunner

import genbench
from genbench.cli import cli
from genbench.onnx_model import describe_graph, graph_metadata, read_metadata, write_metadata

Z = 16


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def sample_graph(path, low=0.0, high=1.0, batch="N", data_input=False, channels=1):
    """z [N, 16] → x [N, 1, 8, 8] = low + (high - low) · sigmoid(z W): a linear 'generator' on digits."""
    from onnx import TensorProto, helper, numpy_helper, save

    w = np.random.default_rng(0).standard_normal((Z, 64 * channels)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["z", "W"], ["h"]), helper.make_node("Sigmoid", ["h"], ["s"]),
             helper.make_node("Mul", ["s", "scale"], ["m"]), helper.make_node("Add", ["m", "low"], ["f"]),
             helper.make_node("Reshape", ["f", "shape"], ["x"])]
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array(high - low, np.float32), "scale"),
             numpy_helper.from_array(np.array(low, np.float32), "low"),
             numpy_helper.from_array(np.array([-1, channels, 8, 8], np.int64), "shape")]
    graph = helper.make_graph(nodes, "gen", [helper.make_tensor_value_info("z", TensorProto.FLOAT, [batch, Z])],
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, channels, 8, 8])], inits)
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(path))
    return path


def bigram_graph(path):
    """tokens [batch, seq] → logits [batch, seq, 256]: a lookup table, i.e. a byte bigram model."""
    from onnx import TensorProto, helper, numpy_helper, save

    table = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("Gather", ["table", "tokens"], ["logits"], axis=0)], "bigram",
                              [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["b", "t"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", "t", 256])],
                              [numpy_helper.from_array(table, "table")])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(path))
    return path


FACTS = ("--meta", "inputs.z.source=normal", "--meta", "outputs.x.low=0", "--meta", "outputs.x.high=1")


def one_error_line(r):
    lines = r.output.strip().splitlines()
    assert r.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: "), r.output
    return lines[0]


def test_missing_facts_are_refused_in_one_line_naming_each_and_its_flag(tmp_path, builtins_only):
    g = sample_graph(tmp_path / "gen.onnx")
    line = one_error_line(invoke("run", "--onnx", g, "--task", "digits", "--out", tmp_path / "runs"))
    assert "gen.onnx does not say its role: give --role sample|logits|likelihood|denoise|elbo" in line and "genbench.role" in line
    line = one_error_line(invoke("run", "--onnx", g, "--role", "sample", "--task", "digits", "--out", tmp_path / "runs"))
    assert "does not say the distribution of input 'z' and the value range of output 'x'" in line
    assert "--meta inputs.z.source=normal|uniform|tokens --meta outputs.x.low=0 --meta outputs.x.high=1" in line
    assert "genbench.inputs.z.source, genbench.outputs.x.low, genbench.outputs.x.high" in line
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, words", [
    (("--meta", "inputs.q.source=normal"), "--meta inputs.q.source is not a fact any of the graphs needs"),
    (("--meta", "context_length"), "give KEY=VALUE"),
    (("--meta", "inputs.z.source=data"), "a sample graph must not take the test split"),
    (("gan-mlp",), "name no model"),
    (("--task", "ring8"), "exactly one --task"),
])
def test_wrong_facts_and_options_are_one_line_errors(tmp_path, builtins_only, args, words):
    g = sample_graph(tmp_path / "gen.onnx")
    base = ["run", "--onnx", g, "--role", "sample", "--task", "digits", "--out", tmp_path / "runs"]
    assert words in one_error_line(invoke(*base, *FACTS, *args))  # a later --meta of the same key wins


def test_a_graph_over_the_size_cap_is_refused_before_it_is_read(tmp_path, builtins_only, monkeypatch):
    g = sample_graph(tmp_path / "gen.onnx")
    monkeypatch.setenv("GENBENCH_MAX_GRAPH_MB", "0.001")
    assert "MiB cap on graphs" in one_error_line(invoke("run", "--onnx", g, "--role", "sample", "--task", "digits"))


def test_a_tanh_range_and_a_fixed_batch_axis_are_refused_with_their_fix(tmp_path, builtins_only):
    g = sample_graph(tmp_path / "tanh.onnx", low=-1.0)
    line = one_error_line(invoke("run", "--onnx", g, "--role", "sample", "--task", "digits", "--meta",
                                 "inputs.z.source=normal", "--meta", "outputs.x.low=-1", "--meta", "outputs.x.high=1"))
    assert "declared in [-1, 1], outside task 'digits's value range [0, 1] (a tanh output?" in line
    fixed = sample_graph(tmp_path / "fixed.onnx", batch=1)
    line = one_error_line(invoke("run", "--onnx", fixed, "--role", "sample", "--task", "digits", *FACTS))
    assert "sample graph tensor 'z' has its batch axis fixed to 1; export it with a dynamic axis" in line
    (tmp_path / "not.onnx").write_bytes(b"not a graph")
    assert "is not an ONNX model" in one_error_line(invoke("run", "--onnx", tmp_path / "not.onnx", "--role", "sample",
                                                           "--task", "digits"))


@pytest.mark.parametrize("low, high, words", [
    ("nan", "nan", "outputs.x.low='nan' is not a finite number"),  # NaN would switch the range check off
    ("0", "inf", "outputs.x.high='inf' is not a finite number"),
    ("1", "0", "outputs.x.low=1 is above outputs.x.high=0; give low <= high"),
])
def test_a_range_that_is_not_finite_or_inverted_is_refused_before_anything_is_written(tmp_path, builtins_only, low,
                                                                                      high, words):
    g = sample_graph(tmp_path / "gen.onnx", low=-2.0, high=2.0)  # its outputs leave digits' [0, 1]
    line = one_error_line(invoke("run", "--onnx", g, "--role", "sample", "--task", "digits", "--out", tmp_path / "runs",
                                 "--meta", "inputs.z.source=normal", "--meta", f"outputs.x.low={low}", "--meta",
                                 f"outputs.x.high={high}"))
    assert words in line and line.startswith("error: gen.onnx: ")
    write_metadata(g, {"role": "sample", "inputs.z.source": "normal", "outputs.x.low": low, "outputs.x.high": high})
    assert words in one_error_line(invoke("run", "--onnx", g, "--task", "digits", "--out", tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()


def test_a_graph_that_does_not_fit_the_task_or_its_role_is_refused_before_the_run(tmp_path, builtins_only):
    rgb = sample_graph(tmp_path / "rgb.onnx", channels=3)
    line = one_error_line(invoke("run", "--onnx", rgb, "--role", "sample", "--task", "digits", *FACTS,
                                 "--out", tmp_path / "runs"))
    assert "rgb.onnx: Graph 'sample' output 'x' is declared [batch, 3, 8, 8]; task 'digits' takes samples " \
           "[batch, 1, 8, 8]" in line
    g = sample_graph(tmp_path / "gen.onnx")
    line = one_error_line(invoke("run", "--onnx", g, "--role", "sample", "--task", "ring8", "--meta",
                                 "inputs.z.source=normal", "--out", tmp_path / "runs"))
    assert "is declared [batch, 1, 8, 8]; task 'ring8' takes samples [batch, 2]" in line
    line = one_error_line(invoke("run", "--onnx", g, "--role", "sample", "--task", "text", "--meta",
                                 "inputs.z.source=normal", "--out", tmp_path / "runs"))
    assert "Task 'text' is a text task, sampled and scored through a 'logits' graph" in line
    line = one_error_line(invoke("run", "--onnx", g, "--role", "logits", "--task", "digits", "--out", tmp_path / "runs"))
    assert "gen.onnx is not a logits graph: a logits graph takes one int64 tokens input [batch, seq]" in line
    assert "this one takes z float32 [N, 16] and returns x float32 [N, 1, 8, 8] (a sample graph? give --role sample)" \
        in line
    line = one_error_line(invoke("run", "--onnx", tmp_path, "--role", "sample", "--task", "digits"))
    assert f"--onnx {tmp_path} is a directory; give the .onnx file in it." in line
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("value", ["abc", "-1", "0", "nan"])
def test_a_bad_graph_size_cap_in_the_environment_is_one_line_naming_the_variable(tmp_path, builtins_only, monkeypatch,
                                                                                 value):
    g = sample_graph(tmp_path / "gen.onnx")
    monkeypatch.setenv("GENBENCH_MAX_GRAPH_MB", value)
    line = one_error_line(invoke("run", "--onnx", g, "--role", "sample", "--task", "digits", *FACTS))
    assert line == f"error: $GENBENCH_MAX_GRAPH_MB={value!r} is not allowed: give a size in MiB, above 0 (or unset it)."
    line = one_error_line(invoke("run", "baseline-gaussian", "--task", "digits", "--out", tmp_path / "runs"))
    assert "$GENBENCH_MAX_GRAPH_MB" in line and not (tmp_path / "runs").exists()  # a plugin's: before any job


def test_a_graph_given_by_flags_is_validated_sampled_scored_and_timed_in_onnx_runtime_only(tmp_path, builtins_only):
    g = sample_graph(tmp_path / "gen.onnx")
    r = invoke("run", "--onnx", g, "--role", "sample", *FACTS, "--task", "digits", "--profile", "smoke",
               "--no-baselines", "--executor", "inline", "--out", tmp_path / "runs", "--name", "linear-gen")
    assert r.exit_code == 0, r.output
    run = genbench.load_run(next((tmp_path / "runs").iterdir()))
    assert "--onnx" in run.command and "--meta inputs.z.source=normal" in run.command
    (job,) = run.jobs
    assert (job.model, job.family, job.plugin, job.status, job.train) == ("linear-gen", "onnx", "onnx-file", "ok", None)
    graph = job.export["graphs"]["sample"]
    assert graph["parity_max_abs_diff"] is None and graph["parity"].startswith("not available")
    assert graph["checked_batch_sizes"] == [1, 3, 8]
    # what the graph was and what it was driven with: enough to reproduce the run (load_run checked the schema)
    import hashlib

    assert run.config["onnx"] == {
        "graphs": [{"file": str(g), "sha256": hashlib.sha256(g.read_bytes()).hexdigest(), "role": "sample",
                    "metadata": {}}],
        "meta": {"inputs.z.source": "normal", "outputs.x.low": "0", "outputs.x.high": "1"}, "name": "linear-gen"}
    assert graph["inputs"] == [{"name": "z", "shape": ["batch", Z], "dtype": "float32", "source": "normal"}]
    assert graph["outputs"] == [{"name": "x", "shape": ["batch", 1, 8, 8], "dtype": "float32", "low": 0.0, "high": 1.0}]
    fd = job.quality["fd"]
    assert fd.n == 500 and fd.floor is not None and fd.value > fd.floor
    assert job.timing["status"] == "done" and job.timing["torch_module"].startswith("not available")
    assert job.performance and {p.runtime for p in job.performance} == {"onnxruntime"}
    assert any("torch eager not timed: not available" in w for w in job.warnings)
    report = (tmp_path / "runs" / run.run_id / "report.md").read_text()
    assert "torch eager not timed: not available" in report
    assert "### Speed per generated sample (ONNX Runtime; PyTorch eager not timed)" in report  # not "against"


def test_metadata_written_into_the_graph_makes_it_self_describing(tmp_path):
    from genbench.data.digits import load_digits

    g = sample_graph(tmp_path / "gen.onnx")
    flags = {"inputs.z.source": "uniform", "outputs.x.low": "0", "outputs.x.high": "1"}
    from_flags = describe_graph(g, load_digits(), role="sample", flags=flags)
    write_metadata(g, graph_metadata(from_flags))
    assert read_metadata(g)["inputs.z.source"] == "uniform" and read_metadata(g)["role"] == "sample"
    from_metadata = describe_graph(g, load_digits())
    assert from_metadata == from_flags
    assert from_metadata.inputs[0].shape == ("batch", Z) and from_metadata.outputs[0].shape == ("batch", 1, 8, 8)
    # flags win over the graph's own metadata
    assert describe_graph(g, load_digits(), flags={"inputs.z.source": "normal"}).inputs[0].source == "normal"
    # the spec crosses into job processes by pickle, and stays what it is
    import pickle

    from genbench.onnx_model import OnnxFileSpec, supplied_model

    spec = supplied_model([g], load_digits(), "image")
    assert isinstance(pickle.loads(pickle.dumps(spec)), OnnxFileSpec) and pickle.loads(pickle.dumps(spec)) == spec
    # docs/score.md's example: numbers as numbers
    write_metadata(g, {"role": "sample", "inputs.z.source": "normal", "outputs.x.low": 0, "outputs.x.high": 1})
    assert describe_graph(g, load_digits()).outputs[0].high == 1.0


def test_a_logits_graph_needs_its_context_length_then_gets_bits_per_byte(tmp_path, builtins_only):
    g = bigram_graph(tmp_path / "bigram.onnx")
    line = one_error_line(invoke("run", "--onnx", g, "--role", "logits", "--task", "text"))
    assert "does not say the context length (tokens it takes): give --meta context_length=64" in line
    write_metadata(g, {"role": "logits", "context_length": 16})
    r = genbench.run_onnx(onnx=[g], tasks=["text"], profile="smoke", baselines=False, timing=False,
                          executor="inline", out=tmp_path / "runs")
    (job,) = r.jobs
    assert job.status == "ok", job.error
    bpb = job.quality["bpb"]
    assert 7.0 < bpb.value < 12.0  # a random table: near (or worse than) a uniform model's 8 bits per byte
    assert job.export["graphs"]["logits"]["parity"].startswith("not available")
    logits = job.export["graphs"]["logits"]
    assert logits["inputs"][0] == {"name": "tokens", "shape": ["batch", "seq"], "dtype": "int64", "source": "tokens",
                                   "vocab": 256} and logits["attrs"] == {"context_length": 16}
    assert r.config["onnx"]["graphs"][0]["metadata"] == {"role": "logits", "context_length": "16"}
    assert job.timing == {"status": "off", "reason": "timing switched off (--no-timing)"}


@pytest.mark.parametrize("command", ["run", "score"])
def test_a_name_is_kept_as_typed_or_refused_in_one_line_never_changed(tmp_path, builtins_only, command):
    """``--name "Linear Gen"`` used to become the row ``linear-gen`` without a word."""
    g = sample_graph(tmp_path / "gen.onnx")
    if command == "run":
        args = ("run", "--onnx", g, "--role", "sample", *FACTS, "--task", "digits", "--profile", "smoke")
    else:
        np.save(tmp_path / "s.npy", np.zeros((10, 1, 8, 8), dtype=np.float32))
        args = ("score", tmp_path / "s.npy", "--task", "digits")
    r = invoke(*args, "--no-baselines", "--out", tmp_path / "runs", "--name", "Linear Gen")
    assert r.exit_code == 1
    assert one_error_line(r) == ("error: --name 'Linear Gen' is not a row name (lower-case letters, digits and "
                                 "single dashes, at most 64 characters): pass --name linear-gen instead.")
    assert not (tmp_path / "runs").exists()
    r = invoke(*args, "--no-baselines", "--out", tmp_path / "runs", "--name", "")
    assert r.exit_code == 1 and one_error_line(r).startswith("error: --name '' is empty: pass a row name")
    assert not (tmp_path / "runs").exists()
