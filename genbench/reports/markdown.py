"""``report.md``: one run's tables per task (the leaderboard's rules: split by comparability key, floors at each
row's n, references apart), its speed, and its samples.

Everything taken from run.json is data: text is escaped for Markdown, numbers of the wrong type read as
missing, and a file is embedded or linked only if it lies inside the run directory and under a size cap.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..results import atomic_write_text
from ..types import JobResult, RunResult
from . import (fmt_num, mapping, md_code, md_link_target, md_text, neutralise_controls, number, read_contained,
               safe_perf_summary, text_of)
from . import phases
from .board_markdown import markdown_table
from .leaderboard import Row, Table, build, shared_text

#: how much of samples.txt the report shows, and the largest one it reads
SAMPLE_TEXT_CHARS = 1500
MAX_SAMPLE_TEXT_BYTES = 2**20


def _plugin_lines(env: dict) -> list[str]:
    """Which plugins were loaded (each could have run code) and how build processes were contained."""
    plugins = env.get("plugins")
    out = []
    if isinstance(plugins, list) and plugins:
        named = ", ".join(f"{md_code(mapping(p).get('plugin'))} ({md_text(mapping(p).get('distribution'))} "
                          f"{md_text(mapping(p).get('version'))}, "
                          f"files sha256 {md_text(text_of(mapping(p).get('files_sha256') or 'unknown')[:12])})"
                          for p in plugins)
        out.append(f"- plugins loaded: {named}")
    sandbox = mapping(env.get("sandbox"))
    if sandbox:
        out.append(f"- build processes (plugin code): sandbox {md_text(sandbox.get('build_processes'))}"
                   + (f"; {md_text(sandbox.get('note'))}" if sandbox.get("note") else "")
                   + "; scoring and timing in processes where no plugin code runs")
    return out


def render(run: RunResult, run_dir: Path | None = None) -> str:
    env, config = mapping(run.environment), mapping(run.config)
    from ..runtime.flops import ceiling_value

    ceiling = ceiling_value(mapping(env.get("matmul_gflops")))
    peak = number(mapping(env.get("physical_peak")).get("gflops_per_s"))
    gpus = env.get("gpus")
    lines = [
        f"# genbench run {md_text(run.run_id)}", "",
        f"- command: {md_code(run.command, in_table=False)}",
        f"- profile: {_profile_text(config)}, {_seeds_text(config)}, "
        f"device {md_text(config.get('device'))}, threads {md_text(config.get('threads'))}",
        f"- environment: {md_text(env.get('cpu'))} ({md_text(env.get('cpu_count'))} CPUs), GPUs: "
        f"{md_text(', '.join(text_of(g) for g in gpus) if isinstance(gpus, list) and gpus else 'none')}; "
        f"python {md_text(env.get('python'))}, torch {md_text(env.get('torch'))}, onnxruntime "
        f"{md_text(env.get('onnxruntime'))}, genbench {md_text(run.genbench_version)}, commit "
        f"{md_text(text_of(env.get('git_commit') or 'unknown')[:12])}",
        f"- started {md_text(run.started_at)}, finished {md_text(run.finished_at or 'not finished')}",
        _machine_line(env),
        _ceiling_line(mapping(env.get("matmul_gflops")), ceiling),
        *_plugin_lines(env), "",
    ]
    for failure in run.plugin_failures:
        f = mapping(failure)
        lines.append(f"> plugin **{md_text(f.get('plugin'))}** failed to {md_text(f.get('phase'))}: "
                     f"{md_text(f.get('message'))}")
    board = build([run], directories=[run_dir], include=("ok",))
    for task in dict.fromkeys(j.task for j in run.jobs):
        jobs = [j for j in run.jobs if j.task == task]
        lines += [f"## Task {md_code(task, in_table=False)}", ""]
        reasons = {text_of(j.reason) for j in jobs}
        if all(j.status == "skipped" for j in jobs) and len(reasons) == 1:
            lines += [f"All {len(jobs)} jobs skipped: {md_text(reasons.pop())}", ""]
            continue
        for table in (t for t in board.tables if t.task == task):
            if table.title:
                lines += [f"### {md_text(table.title)}", ""]
            lines += [f"All numbers in this table: {md_text(shared_text(table))}.", ""]
            lines += markdown_table(table, extra=(("train s", _train_seconds), ("parity Δ", _parity)),
                                    provenance=False)
            lines += _settings(table)
        lines += _unfinished(jobs) + _notes(jobs) + _speed_table(jobs, ceiling, peak) + _sampling_tables(jobs) + \
            _grids(jobs, task, run_dir)
    lines += phases.section(run)
    lines += ["Arrows give each column's better direction." + (_TIMING_LEGEND if any(j.performance for j in run.jobs)
                                                                  else ""), ""]
    return "\n".join(lines)


def _seeds_text(config: dict) -> str:
    """``seed 0``, or ``seeds 0, 1, 2`` for a run trained once per seed (``--seeds``)."""
    seeds = config.get("seeds")
    if isinstance(seeds, list) and len(seeds) > 1:
        return f"seeds {md_text(', '.join(text_of(s) for s in seeds))}"
    return f"seed {md_text(config.get('seed'))}"


_TIMING_LEGEND = (" Timings: ONNX Runtime and PyTorch eager interleaved in one process, one job at a time with nothing "
                  "else of genbench running, warm-up excluded; each figure is judged on its own (run.json's "
                  "figure_validity): 'timing valid: no' means a figure in the row (the p50 at batch 1, the best "
                  "batch's throughput) lacks the calls or the duration it needs, and a p99 that lacks them is never "
                  "shown; '(noisy)' means other processes kept more than half a core busy during the measurement.")


def _profile_text(config: dict) -> str:
    """The profile, and for a user-defined one (a settings file's) what it changes of its base."""
    user = mapping(config.get("user_profile"))
    if not user:
        return md_text(config.get("profile"))
    changed = ", ".join(f"{k} {text_of(user.get(k))}" for k in ("samples", "steps", "batch_sizes", "timing")
                        if user.get(k) not in (None, {}, []))
    return (f"{md_text(user.get('name'))} (user profile based on {md_text(user.get('based_on'))}"
            f"{': ' + md_text(changed) if changed else ''})")


def _machine_line(env: dict) -> str:
    """The machine that measured this run's speed figures (its identity) and its physical peak."""
    from ..perf.machine import describe

    machine = mapping(env.get("machine"))
    if not machine.get("identity"):
        return "- machine: not identified (a run written before machine identities)"
    text = f"- machine: {md_text(describe(machine))}"
    peak = mapping(env.get("physical_peak"))
    g = number(peak.get("gflops_per_s"))
    if g is not None:
        text += (f"; physical peak {fmt_num(g, '{:,.1f}')} GFLOP/s FP32 ({fmt_num(peak.get('clock_ghz'), '{:.2f}')} GHz × "
                 f"{fmt_num(peak.get('flop_per_cycle'), '{:g}')} FLOP/cycle × {md_text(peak.get('threads'))} threads, "
                 f"{md_text(machine.get('method') or 'measured')})")
    elif machine.get("clock_ghz") is None:
        text += "; physical peak: not measured (it is measured when a run times models on the CPU)"
    return text


def _ceiling_line(measured: dict, ceiling: float | None) -> str:
    """The machine's practical GEMM ceiling (its final value, re-measured if a graph beat it), or that it was not
    measured (no timing stage, or not on a CPU)."""
    if ceiling is None:
        return "- GEMM ceiling: not measured (it is measured when a run times models on the CPU)"
    threads = number(measured.get("threads"))
    sizes = measured.get("sizes") if isinstance(measured.get("sizes"), list) else [measured.get("n") or 1024]
    what = ", ".join(f"{text_of(n)}²" for n in sizes[:4])
    text = (f"- GEMM ceiling (float32 matmul, best of {md_text(what)}, torch and ONNX Runtime"
            f"{f', {threads:g} threads' if threads is not None else ''}): {fmt_num(ceiling, '{:.1f}')} GFLOP/s")
    if measured.get("remeasured"):
        text += " after re-measuring it (a graph beat the first measurement)"
    if measured.get("note"):
        text += f"; {md_text(measured['note'])}"
    return text


def _train_seconds(r: Row) -> str:
    cached = " (cached)" if mapping(r.job.cache).get("status") == "hit" else ""
    return fmt_num(mapping(r.job.train).get("seconds"), "{:.1f}") + cached


def _parity(r: Row) -> str:
    diffs = [number(mapping(g).get("parity_max_abs_diff")) for g in mapping(mapping(r.job.export).get("graphs")).values()]
    return fmt_num(max((d for d in diffs if d is not None), default=None), "{:.1e}")


def _settings(table: Table) -> list[str]:
    """Each column's settings (``params``) and note, from its first row: k, bound, data preparation."""
    lines = []
    for c in table.columns:
        mv = next((r.cells[c.label].value for r in table.rows if c.label in r.cells), None)
        params = {k: v for k, v in mapping(mv.params if mv else None).items() if k != "graph"}
        if params or (mv is not None and mv.note):
            text = ", ".join(f"{k} {text_of(v)}" for k, v in params.items())
            if mv is not None and mv.note:
                text += f" ({text_of(mv.note)})" if text else text_of(mv.note)
            lines.append(f"- {md_text(c.label)} settings: {md_text(text)}")
    return lines + [""] if lines else []


def _unfinished(jobs: list[JobResult]) -> list[str]:
    """The jobs of a task without numbers: failed, skipped or pending, each with why."""
    rows = []
    for j in jobs:
        if j.status == "ok":
            continue
        if j.status == "failed" and j.error is not None:
            why = f"failed ({j.error.phase}): {j.error.message}"
        else:
            why = f"{j.status}: {j.reason or 'no reason recorded'}" if j.status != "pending" else \
                "pending: work left for genbench run --resume"
        rows.append(f"| {md_code(j.model)} | {md_text(j.family)} | {md_text(why)} |")
    if not rows:
        return []
    return ["Jobs without numbers:", "", "| model | family | status |", "|---|---|---|", *rows, ""]


def _notes(jobs: list[JobResult]) -> list[str]:
    notes = [f"- warning, {md_code(j.model, False)}: {md_text(w)}" for j in jobs for w in j.warnings]
    notes += [f"- cache, {md_code(j.model, False)}: {md_text(mapping(j.cache).get('reason'))}" for j in jobs
              if mapping(j.cache).get("reason")]
    if any(mapping(j.cache).get("status") == "hit" for j in jobs):
        notes.append("- (cached): restored from the model cache, not trained in this run; train s is the original "
                     "training time. `genbench run --no-cache` retrains.")
    return notes + [""] if notes else []


def _speed_table(jobs: list[JobResult], ceiling: float | None = None, peak: float | None = None) -> list[str]:
    """Two tables: the cost of one generated sample (the headline: ms per sample at batch 1, samples/s at the best
    batch; the same definition for every family), then each graph's forward passes (a detail, in items/s):
    never one column holding both."""
    head_rows, forward_rows = [], []
    for j in jobs:
        p = safe_perf_summary(j)  # per generated sample, or nothing
        if p["unit"] == "samples/s" and (number(p["ort_p50_ms_b1"]) is not None or number(p["torch_p50_ms_b1"])
                                         is not None or number(p["ort_best_throughput"]) is not None
                                         or number(p["torch_best_throughput"]) is not None):
            head_rows.append([md_code(j.model), md_text(_how_made(j))] + _figures(p))
        for graph in dict.fromkeys(r.graph for r in j.performance if r.scenario == "forward"):
            f = safe_perf_summary(j, graph, "forward")
            forward_rows.append([md_code(j.model), md_code(graph)] + _figures(f) + [_limit(j, graph, "forward",
                                                                                          ceiling, peak)])
    lines = []
    if head_rows:
        head = ["model", "one sample is", "ORT ms/sample @b1 ↓", "torch ms/sample @b1 ↓", "ORT/torch latency ↑",
                "ORT samples/s (best batch) ↑", "torch samples/s (best batch) ↑", "ORT/torch throughput ↑",
                "timing valid"]
        torch_timed = any(r.runtime == "torch-eager" for j in jobs for r in j.performance)
        what = "ONNX Runtime against PyTorch eager" if torch_timed else "ONNX Runtime; PyTorch eager not timed"
        lines += [f"### Speed per generated sample ({what})", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + \
            ["| " + " | ".join(r) + " |" for r in head_rows] + [""]
    if forward_rows:
        head = ["model", "graph", "ORT ms/call @b1 ↓", "torch ms/call @b1 ↓", "ORT/torch latency ↑",
                "ORT items/s (best batch) ↑", "torch items/s (best batch) ↑", "ORT/torch throughput ↑", "timing valid",
                "GFLOP/s ORT / torch (of ceiling; of peak)"]
        lines += ["#### Details: forward passes (one run of one graph per call; items/s, not samples)", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + \
            ["| " + " | ".join(r) + " |" for r in forward_rows] + [""]
    return lines


def _how_made(j: JobResult) -> str:
    """What one generated sample costs in graph calls (the generate records' ``steps``)."""
    steps = next((number(r.steps) for r in j.performance if r.scenario == "generate" and number(r.steps)), None)
    if steps is None:
        return "one call of the sample graph"
    return "one call of the sample graph" if steps == 1 else f"{steps:.0f} calls of the logits graph (sampling loop)"


def _figures(p: dict) -> list[str]:
    """Latency at batch 1, best throughput, their ratios and validity, as table cells."""
    ort_b, torch_b = number(p["ort_best_batch"]), number(p["torch_best_batch"])
    return [fmt_num(p["ort_p50_ms_b1"], "{:.3f}"), fmt_num(p["torch_p50_ms_b1"], "{:.3f}"),
            fmt_num(p.get("latency_speedup_b1"), "{:.2f}×"),
            fmt_num(p["ort_best_throughput"], "{:,.0f}") + (f" (b{ort_b:.0f})" if ort_b else ""),
            fmt_num(p["torch_best_throughput"], "{:,.0f}") + (f" (b{torch_b:.0f})" if torch_b else ""),
            fmt_num(p.get("throughput_ratio_best"), "{:.2f}×"),
            ("–" if p["valid"] is None else "yes" if p["valid"] else "no") + (" (noisy)" if p["noisy"] else "")]


def _limit(j: JobResult, graph: str, scenario: str, ceiling: float | None, peak: float | None = None) -> str:
    """Best achieved GFLOP/s per runtime, and its share of the machine's practical GEMM ceiling and of its
    physical peak; a record above the physical peak is a measurement error, left out and said so."""
    best: dict[str, float] = {}
    wrong = 0
    for p in j.performance:
        g = number(p.gflops_per_s)
        if p.graph == graph and p.scenario == scenario and g:
            if p.measurement_error:
                wrong += 1
                continue
            best[p.runtime] = max(best.get(p.runtime, 0.0), g)
    if not best:
        return "–" + (f" ({wrong} record(s) above the physical peak: measurement errors)" if wrong else "")
    runtimes = ("onnxruntime", "torch-eager")  # a runtime not timed (e.g. no torch module) is "–", not 0
    text = " / ".join(f"{best[r]:.1f}" if r in best else "–" for r in runtimes)
    shares = []
    if ceiling:
        shares.append(" / ".join(f"{best[r] / ceiling:.0%}" if r in best else "–" for r in runtimes))
    if peak:
        shares.append(" / ".join(f"{best[r] / peak:.0%}" if r in best else "–" for r in runtimes) + " of peak")
    if shares:
        text += " (" + "; ".join(shares) + ")"
    if wrong:
        text += f"; {wrong} record(s) above the physical peak left out (measurement errors)"
    return text


_SUPPLIED = " (samples supplied to genbench score, not drawn by genbench)"
_REFERENCE = " (a reference row: drawn by genbench from the task's data, no graph)"
_DRAWN = " (drawn by genbench from the exported ONNX graphs)"


def _source(job: JobResult) -> str:
    """Where a row's samples came from, said per row: a score report's rows were not drawn from a graph."""
    if job.family == "samples":
        return _SUPPLIED
    return _REFERENCE if job.family == "baseline" else _DRAWN


def _sampling_tables(jobs: list[JobResult]) -> list[str]:
    """Diffusion jobs: quality against the sampler's steps, from their seed's ``export["sampling"]`` (genbench's
    DDIM and DDPM loops over the same denoise graph, the same n and seed)."""
    lines: list[str] = []
    for j in jobs:
        sampling = mapping(mapping(j.export).get("sampling"))
        rows = sampling.get("quality_vs_steps")
        if not isinstance(rows, list) or not rows:
            continue
        metric = text_of(sampling.get("quality_vs_steps_metric") or "fd")
        if not lines:
            lines += ["### Quality against sampling steps (diffusion: genbench's DDIM and DDPM loops)", ""]
        first = mapping(rows[0])
        lines += [f"**{md_text(j.model)}**: {md_text(metric)} of {md_text(first.get('n'))} samples at each step count, "
                  f"the same seed; schedule {md_text(sampling.get('schedule'))}; the "
                  f"metrics above are at DDIM {md_text(sampling.get('steps'))} steps. Draw time: the score "
                  "process on one thread, not a timing record.", "",
                  f"| sampler | steps | {md_text(metric)} ↓ | draw ms/sample |", "|---|---:|---:|---:|"]
        for r in rows:
            r = mapping(r)
            lines.append(f"| {md_text(text_of(r.get('sampler')).upper())} | {md_text(r.get('steps'))} | "
                         f"{fmt_num(number(r.get(metric)))} | {fmt_num(number(r.get('draw_ms_per_sample')))} |")
        lines.append("")
    return lines


def _grids(jobs: list[JobResult], task: str, run_dir: Path | None = None) -> list[str]:
    """Sample grids (linked) and sample text (embedded), only from files inside the run directory."""
    grids = [(j, j.files.get("samples_png")) for j in jobs if j.files.get("samples_png")]
    texts = [(j, j.files.get("samples_txt")) for j in jobs if j.files.get("samples_txt")]
    if not grids and not texts:
        return []
    lines = ["### Samples", ""]
    for j, png in grids:
        data, why = read_contained(run_dir, png)
        if data is None:
            lines += [f"**{md_text(j.model)}**: sample grid skipped ({md_text(why)})", ""]
            continue
        supplied = _source(j)
        lines += [f"**{md_text(j.model)}**{supplied}  ",
                  f"![samples of {md_text(j.model)} on {md_text(task)}]({md_link_target(png)})", ""]
    for j, txt in texts:
        data, why = read_contained(run_dir, txt, MAX_SAMPLE_TEXT_BYTES)
        if data is None:
            lines += [f"**{md_text(j.model)}**: sample text skipped ({md_text(why)})", ""]
            continue
        body = neutralise_controls(data.decode("utf-8", errors="replace")[:SAMPLE_TEXT_CHARS], keep="\n", limit=None)
        fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", body)), default=0))
        supplied = _source(j)
        lines += [f"**{md_text(j.model)}**{supplied} ([{md_text(txt)}]({md_link_target(txt)}))", "", fence + "text", body,
                  fence, ""]
    return lines


def write(run: RunResult, directory: Path) -> Path:
    path = Path(directory) / "report.md"
    atomic_write_text(path, render(run, Path(directory)))
    return path


__all__ = ["render", "write"]
