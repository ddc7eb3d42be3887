"""Graphs that lie (issue #24, items 1 and 2): a logits graph that reads the token it predicts, and graphs whose
rows change with the batch they come in. Each attack passed validation before the causality and
batch-independence checks; each is refused now, in one line, by validation, ``run --onnx`` and ``check-plugin``."""

import numpy as np
import pytest
from click.testing import CliRunner

import genbench
from genbench import GraphSpec, OnnxBundle, TensorSpec
from genbench.errors import BundleError
from genbench.runtime.validate import validate_bundle
from lying_fakes import (LyingPlugin, batch_if_weights, write_batch_if_graph, write_peeking_graph,
                         write_row_mixing_graph)


@pytest.fixture
def lying_host():
    from genbench.plugins import make_plugin_manager

    return make_plugin_manager(extra_plugins=[("lying", LyingPlugin)], entry_points=False)


def logits_bundle(directory, context=64):
    return OnnxBundle(directory, (GraphSpec(
        "logits", "logits.onnx", (TensorSpec("tokens", ("batch", "seq"), dtype="int64", source="tokens", vocab=256),),
        (TensorSpec("logits", ("batch", "seq", 256)),), attrs={"context_length": context}),))


def sample_bundle(directory):
    return OnnxBundle(directory, (GraphSpec("sample", "g.onnx", (TensorSpec("z", ("batch", 4), source="normal"),),
                                            (TensorSpec("x", ("batch", 1, 8, 8), low=0.0, high=1.0),)),))


def bigram_graph(path):
    from onnx import TensorProto, helper, numpy_helper, save

    table = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("Gather", ["table", "tokens"], ["logits"], axis=0)], "bigram",
                              [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "seq"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", 256])],
                              [numpy_helper.from_array(table, "table")])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(path))
    return path


def one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


# --------------------------------------------------------------------------- causality (item 1)


def test_a_logits_graph_that_reads_the_next_token_is_refused_at_validation(tmp_path):
    write_peeking_graph(tmp_path / "logits.onnx")
    with pytest.raises(BundleError) as exc:
        validate_bundle(logits_bundle(tmp_path), None)
    assert one_line(exc).startswith("Graph 'logits' looks ahead: its logits at position 0 change when only the "
                                    "tokens after position 0 change")
    assert "logits[:, t] must depend on tokens[:, :t+1] only" in str(exc.value)


def test_the_first_position_that_looks_ahead_is_named(tmp_path):
    """A graph causal up to position 9 that reads ahead from 10 on: the check names position 10."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    write_peeking_graph(tmp_path / "peek.onnx")
    peek = onnx.load(str(tmp_path / "peek.onnx"))
    # logits = peek(tokens) * mask, mask[t] = 0 for t < 10: positions 0..9 are uniform (causal), the rest peek
    mask = np.zeros((1, 64, 1), np.float32)
    mask[:, 10:] = 1.0
    g = peek.graph
    g.node[-1].output[0] = "peeked"
    g.initializer.extend([numpy_helper.from_array(mask, "MASK"), numpy_helper.from_array(np.array([0], np.int64), "Z0"),
                          numpy_helper.from_array(np.array([1], np.int64), "Z1")])
    g.node.extend([helper.make_node("Shape", ["tokens"], ["shp"]),
                   helper.make_node("Slice", ["shp", "Z1", "END"], ["seqlen"]),
                   helper.make_node("Slice", ["MASK", "Z0", "seqlen", "Z1"], ["m"]),
                   helper.make_node("Mul", ["peeked", "m"], ["logits"])])
    onnx.save(peek, str(tmp_path / "logits.onnx"))
    assert TensorProto.FLOAT == g.output[0].type.tensor_type.elem_type
    with pytest.raises(BundleError, match=r"its logits at position 10 change when only the tokens after position "
                                          r"(1[0-9]|[2-6][0-9]) change .*sequence length 16"):
        validate_bundle(logits_bundle(tmp_path), None)


def test_honest_logits_graphs_pass_and_the_export_says_where_they_were_checked(tmp_path):
    from genbench.runtime.causality import positions

    bigram_graph(tmp_path / "logits.onnx")
    report = validate_bundle(logits_bundle(tmp_path), None)["logits"]
    causal = report["causality"]
    assert causal["status"] == "passed" and causal["draws"] == 2 and causal["batch"] == 1
    assert set(causal["positions"]) == set(causal["every_position"]) == {"5", "16", "64"}
    for length, where in causal["positions"].items():  # 0, the last but one, others drawn afresh
        n = int(length)
        assert where[0] == 0 and where[-1] == n - 2 and all(0 <= t <= n - 2 for t in where)
    assert causal["max_abs_diff"] == 0.0 and causal["tolerance"] > 0
    assert positions(16)[0] == 0 and positions(16)[-1] == 14 and positions(1) == []
    assert len({tuple(positions(64)) for _ in range(20)}) > 1  # not a fixed set a graph could avoid


def test_run_onnx_refuses_a_graph_that_reads_the_next_byte(tmp_path, builtins_only):
    """The attack of the issue: 0.104 bits per byte, ranked first, before the check."""
    from genbench.onnx_model import write_metadata

    g = write_peeking_graph(tmp_path / "peek.onnx")
    write_metadata(g, {"role": "logits", "context_length": 64})
    r = genbench.run_onnx(onnx=[g], tasks=["text"], profile="smoke", baselines=False, timing=False,
                          executor="inline", out=tmp_path / "runs")
    (job,) = r.jobs
    assert job.status == "failed" and job.error.phase == "validate", (job.status, job.quality.get("bpb"))
    assert job.error.message.startswith("Graph 'logits' looks ahead: its logits at position 0 change")
    assert "\n" not in job.error.message and "bpb" not in job.quality


# --------------------------------------------------------------------------- batch independence (item 2)


def test_a_graph_that_branches_on_its_batch_size_is_refused_at_validation(tmp_path):
    write_batch_if_graph(tmp_path / "g.onnx", batch_if_weights())
    bundle = sample_bundle(tmp_path)
    with pytest.raises(BundleError) as exc:
        validate_bundle(bundle, None)  # grey at 1, 3 and 8: the sizes validation ran it at before
    assert one_line(exc).startswith("Graph 'sample' output 'x' changes with the batch size: row 0 of a batch of 500 "
                                    "(a size genbench runs it at for sampling) differs from the same inputs alone at "
                                    "batch 1 by ")
    # the job's own sizes: its timed batch 1024 and its remainder batch of 347 samples (1,347 digits)
    with pytest.raises(BundleError, match=r"row 0 of a batch of 347 \(a size genbench runs it at for sampling\)"):
        validate_bundle(bundle, None, timed_batch_sizes=(1, 64, 1024), sample_counts=(1347,))
    with pytest.raises(BundleError, match=r"a batch of 1024 \(a size genbench runs it at for timing\)"):
        write_batch_if_graph(tmp_path / "g.onnx", batch_if_weights(), switch=1000)
        validate_bundle(bundle, None, timed_batch_sizes=(1, 64, 1024), sample_counts=(500,))


def test_rows_that_read_each_other_are_refused(tmp_path):
    """Causal within each row, but each row's last logits read the next row's first token: in the text
    likelihood's batches of consecutive windows, the next target. The causality check alone cannot see it."""
    from genbench.runtime.causality import check_causality
    from genbench.runtime import make_session

    write_row_mixing_graph(tmp_path / "logits.onnx")
    bundle = logits_bundle(tmp_path)
    session = make_session(tmp_path / "logits.onnx")
    check_causality(bundle.graphs[0], lambda f: session.run(None, dict(f)), [5, 64])  # passes
    with pytest.raises(BundleError, match=r"output 'logits' changes with the batch size: row 0 of a batch of 3 "
                                          r"\(a size genbench runs it at for validation\)"):
        validate_bundle(bundle, None)


def test_batch_sizes_cover_validation_sampling_the_likelihood_and_timing():
    from genbench.data.digits import load_digits
    from genbench.runtime.batching import batch_sizes_used

    digits = load_digits()
    sample = GraphSpec("sample", "g.onnx", (TensorSpec("z", ("batch", 4), source="normal"),),
                       (TensorSpec("x", ("batch", 1, 8, 8)),))
    assert batch_sizes_used(sample, digits, validation=(1, 3, 8), samples=1347, timed=(1, 64, 1024)) == {
        1: ["validation", "timing"], 3: ["validation"], 8: ["validation"], 64: ["timing"], 347: ["sampling"],
        500: ["sampling"], 1024: ["timing"]}
    elbo = GraphSpec("likelihood", "e.onnx", (TensorSpec("x", ("batch", 1, 8, 8), source="data"),),
                     (TensorSpec("ll", ("batch",)),))
    assert batch_sizes_used(elbo, digits, validation=(1,)) == {1: ["validation"], 200: ["likelihood"],
                                                              250: ["likelihood"]}  # 450 test digits


def test_honest_graphs_pass_and_the_export_records_each_size(tmp_path):
    from fakes import write_graph

    write_graph(tmp_path / "g.onnx", batch_if_weights())
    report = validate_bundle(sample_bundle(tmp_path), None, timed_batch_sizes=(1, 64), sample_counts=(700,))["sample"]
    checked = report["batch_independence"]
    assert checked["status"] == "passed" and checked["rows"] == 3
    assert checked["batch_sizes"] == [1, 3, 8, 64, 200, 500]
    assert checked["used_for"]["200"] == ["sampling"] and checked["used_for"]["1"] == ["validation", "timing"]
    assert checked["max_abs_diff"] <= checked["tolerance"]
    assert "causality" not in report  # a sample graph returns no per-position conditionals


def test_run_onnx_refuses_a_graph_that_is_grey_where_it_is_validated_and_timed(tmp_path, builtins_only):
    g = write_batch_if_graph(tmp_path / "g.onnx", batch_if_weights())
    r = genbench.run_onnx(onnx=[g], roles=["sample"], meta=["inputs.z.source=normal", "outputs.x.low=0",
                                                            "outputs.x.high=1"],
                          tasks=["digits"], profile="smoke", baselines=False, timing=False, executor="inline",
                          out=tmp_path / "runs")
    (job,) = r.jobs
    assert job.status == "failed" and job.error.phase == "validate", (job.status, job.quality.get("fd"))
    assert "changes with the batch size: row 0 of a batch of 500 (a size genbench runs it at for sampling)" in \
        job.error.message  # the smoke profile's 500 samples, in one batch
    assert "\n" not in job.error.message


def test_run_onnx_records_both_checks_in_the_export(tmp_path, builtins_only):
    from genbench.onnx_model import write_metadata

    g = bigram_graph(tmp_path / "bigram.onnx")
    write_metadata(g, {"role": "logits", "context_length": 16})
    genbench.run_onnx(onnx=[g], tasks=["text"], profile="smoke", baselines=False, timing=False, executor="inline",
                      out=tmp_path / "runs")
    (job,) = genbench.load_run(next((tmp_path / "runs").iterdir())).jobs  # run.json, checked against its schema
    assert job.status == "ok", job.error
    logits = job.export["graphs"]["logits"]
    assert logits["causality"]["status"] == "passed" and set(logits["causality"]["positions"]) == {"5", "16"}
    sizes = logits["batch_independence"]
    assert sizes["status"] == "passed" and {1, 3, 4, 8, 32} <= set(sizes["batch_sizes"])
    assert "timing" not in {w for ws in sizes["used_for"].values() for w in ws}  # --no-timing: nothing timed
    assert sizes["used_for"]["4"] == ["sampling"] and "likelihood" in sizes["used_for"]["32"]


# --------------------------------------------------------------------------- check-plugin


def test_check_plugin_runs_and_reports_both_checks(lying_host):
    from genbench.testing import model_checks

    checks = {c.check: c for c in model_checks("lying-peek", host=lying_host, task="text")}
    assert checks["onnx"].status == "passed"  # parity with its torch module: it is what it says it is
    assert checks["causality"].status == "failed" and "looks ahead" in checks["causality"].message
    assert checks["batch-independence"].status == "skipped" and checks["samples"].status == "skipped"

    checks = {c.check: c for c in model_checks("lying-batch-if", host=lying_host, task="digits")}
    assert checks["onnx"].status == "passed" and checks["causality"].status == "skipped"
    assert "no 'logits' graph" in checks["causality"].message
    bad = checks["batch-independence"]
    assert bad.status == "failed" and "changes with the batch size: row 0 of a batch of 347" in bad.message


def test_check_plugin_says_what_a_conforming_model_was_checked_at(fake_host):
    from genbench.testing import model_checks

    checks = {c.check: c for c in model_checks("text-uniform", host=fake_host, task="text")}
    assert checks["causality"].status == "passed", checks["causality"]
    assert "graph 'logits' looks at no later token" in checks["causality"].message
    assert checks["batch-independence"].status == "passed"
    message = checks["batch-independence"].message  # validation's, 4 text samples, the likelihood's 32, timing's
    assert "each row the same at batch 1, 3, 4, 8, " in message and ", 32, 64, 1024" in message, message


def test_the_cli_lists_both_checks(lying_host, monkeypatch):
    import genbench.cli as cli_module
    import genbench.plugins as plugins

    monkeypatch.setattr(plugins, "make_plugin_manager", lambda *a, **k: lying_host)
    r = CliRunner().invoke(cli_module.cli, ["check-plugin", "lying-batch-if", "--task", "digits"])
    assert r.exit_code == 1
    assert "failed   [lying-batch-if] batch-independence" in r.stdout, r.stdout
    assert "skipped  [lying-batch-if] causality" in r.stdout
    assert r.stderr.startswith("problem: [lying-batch-if] batch-independence: Graph 'sample' output 'x' changes")


def test_a_timed_run_checks_its_profiles_batch_sizes(tmp_path, builtins_only):
    """The harness passes the profile's timed sizes (smoke: 1 and 64) and its samples per job (500)."""
    from fakes import write_graph

    g = tmp_path / "g.onnx"
    write_graph(g, batch_if_weights())
    r = genbench.run_onnx(onnx=[g], roles=["sample"], meta=["inputs.z.source=normal", "outputs.x.low=0",
                                                            "outputs.x.high=1"],
                          tasks=["digits"], profile="smoke", baselines=False, executor="inline", out=tmp_path / "runs")
    (job,) = r.jobs
    assert job.status == "ok", job.error
    checked = job.export["graphs"]["sample"]["batch_independence"]
    assert checked["used_for"] == {"1": ["validation", "timing"], "3": ["validation"], "8": ["validation"],
                                   "64": ["timing"], "500": ["sampling"]}


@pytest.mark.parametrize("ahead_at", [[37], "all but the old fixed ones"])
def test_a_logits_graph_that_looks_ahead_anywhere_is_refused(tmp_path, ahead_at):
    """An outside tester: a graph that looked ahead everywhere but at the positions the check always probed
    (0, 1, 2, 3, 4, 7, 10, 14, 16, 31, 46, 62, 63) scored 1.62 bits/byte and ranked first; one that looked ahead
    only at position 37 passed too. Every position is checked now."""
    from lying_fakes import write_masked_peek_graph

    fixed = {0, 1, 2, 3, 4, 7, 10, 14, 16, 31, 46, 62, 63}
    where = ahead_at if isinstance(ahead_at, list) else [t for t in range(64) if t not in fixed]
    write_masked_peek_graph(tmp_path / "logits.onnx", where)
    with pytest.raises(BundleError) as exc:
        validate_bundle(logits_bundle(tmp_path), None)
    line = one_line(exc)
    assert line.startswith(f"Graph 'logits' looks ahead: its logits at position {where[0]} change when only the "
                           f"tokens after position {where[0]}")


def test_a_sample_graph_that_alters_rows_at_some_places_of_its_batch_is_refused(tmp_path):
    """An outside tester: rows at index 3 mod 7 of every batch came out grey and passed (the check compared the
    first, middle and last rows only)."""
    from lying_fakes import write_row_position_graph

    write_row_position_graph(tmp_path / "g.onnx", batch_if_weights())
    with pytest.raises(BundleError) as exc:
        validate_bundle(sample_bundle(tmp_path), None)
    assert "output 'x' changes with where a row sits in its batch" in one_line(exc)
