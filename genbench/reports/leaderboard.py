"""``genbench leaderboard RUN_DIR...``: merged tables per task in which only comparable numbers stand together.

Every quality number carries a comparability key (:mod:`genbench.comparability`). A task's results are
split into **tables** by the fields that hold for a whole job (profile and training budget, number of
seeds, feature extractor, data hash) and, inside a table, a metric whose numbers still differ in key (n
scored, likelihood data variant or bound) gets one **column** per key. Table titles and column headers
name the fields that differ. A newer run replaces an older number only under the same key.

Rows are models; baselines, replayed training data and real data at each column's n (the floor) are
**reference rows**: shown apart, never ranked. A row a metric flags (``params["flag"]``: e.g. a model that
copies its training data) carries its flags (``Row.flags``); a model that copies its training or test
data (``params["copies"]``) is not ranked either: its rank is "–" and ``Row.not_ranked`` says why. A model's rank is a range when intervals overlap: from
1 + the number of models whose interval lies wholly better, to the number of models whose interval does not
lie wholly worse. The interval is the 95% t-interval over training seeds where there are several, else
value ± 1.96 standard errors where the metric has one, else the value itself.

:func:`build` makes a :class:`Board` (the one model of the tables); ``render_csv`` and
``render_json`` (schema ``genbench.leaderboard/2``), the Markdown page (:mod:`genbench.reports.board_markdown`),
``report.md`` and the HTML page all draw from it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..aggregate import aggregate_quality
from ..comparability import FIELD_LABELS, KEY_FIELDS, UNKNOWN, describe, freeze, key_of, unknown_fields
from ..errors import GenbenchError
from ..types import REPLAY_FLAG, JobResult, MetricValue, RunResult
from . import (METRIC_ORDER, arrow, better_text, csv_cell, direction, fmt_num, mapping, neutralise_controls, number, safe_perf_summary, text_of)

FORMATS = ("md", "csv", "json", "html")
SCHEMA = "genbench.leaderboard/2"
#: the key fields that hold for a whole job: results that differ in one of them go to separate tables
TABLE_FIELDS = ("profile", "seeds", "extractor", "data")
#: models that are references whatever their family: what they stand for
REFERENCE_MODELS = {"baseline-train-copy": "replayed training data",
                    "baseline-split-replay": "replayed training and test data"}
REFERENCE_FAMILIES = {"baseline": "baseline"}
#: what a unitless number is, per built-in metric ({fs}: the feature extractor's name). Numbers are never
#: rescaled: every format shows the value stored in run.json.
SCALES = {
    "fd": "squared distance in the {fs} feature space",
    "fd-inf": "squared distance in the {fs} feature space, extrapolated to n → ∞",
    "fid": "squared distance in the {fs} feature space (FID)",
    "kid": "MMD² (unbiased, cubic kernel) in the {fs} feature space, raw: not ×10³",
    "precision": "fraction of samples, 0 to 1",
    "recall": "fraction of test examples, 0 to 1",
    "coverage": "fraction of test examples, 0 to 1",
    "density": "ratio, real data ≈ 1",
    "high-quality": "fraction of samples, 0 to 1",
    "classifier-score": "exp(nats), 1 to the number of classes",
    "copy-rate": "fraction of samples, 0 to 1 (held-out data ≈ 0.05)",
    "copy-rate-test": "fraction of samples, 0 to 1 (held-out data ≈ 0.05)",
    "tstr": "accuracy on the real test split, a fraction 0 to 1",
}
#: the range a built-in metric's value cannot leave (None: unbounded): a t-interval past it is shown clipped
RANGES: dict[str, tuple[float, float | None]] = {
    **{m: (0.0, 1.0) for m in ("precision", "recall", "coverage", "high-quality", "copy-rate", "copy-rate-test",
                               "tstr")},
    **{m: (0.0, None) for m in ("fd", "fid", "density", "modes", "modes-covered", "class-kl", "reverse-kl")},
    "classifier-score": (1.0, None),
}
Z95 = 1.959963984540054  # the two-sided 95% normal quantile, for value ± z · standard error


@dataclass(frozen=True)
class Source:
    """One run given to the leaderboard, and its directory (for files it names), in the order merged."""

    run: RunResult
    directory: Path | None
    order: int

    @property
    def commit(self) -> str:
        return text_of(mapping(self.run.environment).get("git_commit") or UNKNOWN)[:12]

    @property
    def version(self) -> str:
        return text_of(self.run.genbench_version)

    @property
    def provenance(self) -> str:
        """``0.1.0 @ 26c4bce0fcd8``: the genbench version and commit a number was measured with."""
        return f"{self.version} @ {self.commit}"


@dataclass(frozen=True)
class Cell:
    """One number in a table and the run it came from."""

    value: MetricValue
    source: Source
    metric: str = ""  # the metric's name: what range its interval cannot leave (RANGES)


@dataclass
class Column:
    """One (metric, comparability key) of a table."""

    metric: str
    key: dict[str, Any]
    label: str
    split: tuple[str, ...]  # the key fields in which this column differs from the metric's other columns
    higher_is_better: bool | None  # None: two-sided, the closer to ``target`` the better; never ranked by
    unit: str
    scale: str  # what the numbers are, in words (unit, feature space)
    spread: str  # what "±" means in this column ("" when there is none)
    runs: set[int] = field(default_factory=set)  # Source.order of every run with a number here
    target: float | None = None

    @property
    def n(self) -> Any:
        return self.key.get("n")


@dataclass
class Row:
    """One model (on one device) in one table, from the latest run that has it."""

    job: JobResult
    source: Source
    reference: str | None  # None: ranked; else what the reference row stands for
    cells: dict[str, Cell] = field(default_factory=dict)  # by column label
    rank: tuple[int, int] | None = None
    sources: list[Source] = field(default_factory=list)  # every run a number in this row came from
    flags: list[str] = field(default_factory=list)  # "metric: what it flags", e.g. copying training data
    copies: str | None = None  # "copies training data" (or test data) when its numbers say so
    #: REPLAY_FLAG when a number lies beyond its floor's interval (better than real data at its n), else None
    replayed: str | None = None
    pooled: str | None = None  # "pooled over seeds 0, 1 from runs A (seed 0), B (seed 1)" when several runs made it
    #: the baseline (``baseline-gaussian``) whose interval on the ranking metric lies wholly better than this
    #: model's, or None
    worse_than_baseline: str | None = None

    @property
    def not_ranked(self) -> str | None:
        """Why a model row is not ranked although it is no reference row (it copies, or some number of it is
        better than real data: replayed data?), or None."""
        if self.reference is not None:
            return None
        return "; ".join(r for r in (self.copies, self.replayed) if r) or None

    @property
    def model(self) -> str:
        return self.job.model

    @property
    def provenance(self) -> str:
        return "; ".join(dict.fromkeys(s.provenance for s in self.sources)) or self.source.provenance


@dataclass
class Table:
    """The rows of one task that share every job-wide key field."""

    task: str
    shared: dict[str, Any]
    title: str = ""
    columns: list[Column] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)  # ranked rows in rank order, unranked copiers, references
    rank_by: Column | None = None
    runs: set[int] = field(default_factory=set)
    #: the one run whose numbers this table holds because some of them record no comparability key (a
    #: field that is not recorded equals nothing, so they are never ranked beside another run's); else None
    unkeyed: Source | None = None

    def floor(self, column: Column) -> tuple[float, float] | None:
        """(lowest, highest) floor of ``column`` over its rows (equal when every row has the same), or None."""
        floors = [f for r in self.rows if column.label in r.cells
                  for f in [number(r.cells[column.label].value.floor)] if f is not None]
        return (min(floors), max(floors)) if floors else None


@dataclass
class Board:
    sources: list[Source]
    tables: list[Table]
    warnings: list[str]


# --------------------------------------------------------------------------- building


def reference_kind(job: JobResult) -> str | None:
    """What a reference row stands for (a baseline, replayed training data), or None for a ranked model."""
    return REFERENCE_MODELS.get(job.model) or REFERENCE_FAMILIES.get(job.family)


def _metrics(job: JobResult) -> dict[str, MetricValue]:
    return {m: mv for m, mv in job.quality.items() if isinstance(mv, MetricValue)}


def _table_key(job: JobResult, run: RunResult) -> dict[str, Any]:
    keys = [key_of(mv, job.task) for mv in _metrics(job).values()]
    extractors = sorted({text_of(k["extractor"]) for k in keys if k.get("extractor") not in (None, UNKNOWN)})
    if not keys:
        config = mapping(run.config)
        keys = [{"data": UNKNOWN, "profile": text_of(config.get("profile", UNKNOWN)), "seeds": len(job.seeds)}]
    first = keys[0]
    return {"data": first.get("data"), "profile": first.get("profile"), "seeds": first.get("seeds"),
            "extractor": " + ".join(extractors) if extractors else None}


def column_group(mv: MetricValue, task: str) -> tuple:
    """What must be equal for two numbers of a metric to share a column: key, unit and direction."""
    return (freeze(key_of(mv, task)), text_of(mv.unit), direction(mv))


def copying(mv: MetricValue) -> str | None:
    """The split (``"training"`` or ``"test"``) a metric value says the model copies, or None.

    From ``params["copies"]`` (:mod:`genbench.metrics.memorization`); results written before that field
    are read from the flag's text, which starts "copies <split> data" for a copying verdict (a C_T flag
    with the caveat "concentrated samples rather than copies" is not one)."""
    params = mv.params if isinstance(mv.params, Mapping) else {}
    if "copies" in params:
        return params["copies"] if params["copies"] in ("training", "test", "training and test") else None
    flag = params.get("flag")
    if isinstance(flag, str) and "rather than copies" not in flag:
        for start, split in (("copies training data", "training"), ("copies train data", "training"),
                             ("copies test data", "test")):
            if flag.startswith(start):
                return split
    return None


def replayed(mv: MetricValue) -> bool:
    """Whether a metric value lies beyond its floor's interval, better than real data at its n: its metric says so
    (``params["replayed"]``), or, for results written before that field, its floor interval does."""
    params = mv.params if isinstance(mv.params, Mapping) else {}
    return params.get("replayed") is True or floor_position(mv) == "beyond"


def row_flags(cells: Mapping[str, Cell]) -> tuple[list[str], str | None]:
    """(the row's flags, one "label: flag" per flagged number; why it is not ranked, or None): a model
    whose numbers say it copies its training or test data is no competitor (:attr:`Row.replayed` holds the
    other reason, a number better than real data)."""
    flags, copied = [], []
    for label, cell in cells.items():
        params = cell.value.params if isinstance(cell.value.params, Mapping) else {}
        flag = params.get("flag")
        if flag:
            flags.append(f"{label}: {text_of(flag, 400)}")
        if floor_position(cell.value) == "beyond" and not (isinstance(flag, str) and REPLAY_FLAG in flag):
            flags.append(f"{label}: {REPLAY_FLAG} (beyond the floor's 95% interval over training subsets: better "
                         "than real data at this n, which a model cannot be)")
        split = copying(cell.value)
        for part in (split.split(" and ") if split else ()):
            if part not in copied:
                copied.append(part)
    return flags, (f"copies {' and '.join(copied)} data" if copied else None)


def row_replayed(cells: Mapping[str, Cell]) -> str | None:
    """:data:`~genbench.types.REPLAY_FLAG` when some number of the row is better than real data at its n, else None."""
    return REPLAY_FLAG if any(replayed(c.value) for c in cells.values()) else None


def _unkeyed(job: JobResult) -> bool:
    """Whether a number of ``job`` does not record some comparability key field (a ``genbench.run/1`` file,
    or a foreign one): such numbers cannot be shown to be comparable with another run's."""
    return any(unknown_fields(key_of(mv, job.task)) for mv in _metrics(job).values())


def build(runs: Sequence[RunResult], tasks: Iterable[str] = (), directories: Sequence[Path | None] | None = None,
          include: Iterable[str] = ("ok",)) -> Board:
    """The tables of ``runs`` merged: per task, one table per job-wide key, one column per (metric, key);
    under the same key the latest run (by ``started_at``, then by order given) wins. A run given twice (same
    ``run_id``) counts once. Numbers that do not record their whole key get a table of their run's own.
    A task in ``tasks`` that no run holds is an error (:class:`GenbenchError`), naming the tasks they hold."""
    tasks = tuple(tasks)
    include = tuple(include)
    directories = list(directories) if directories is not None else [None] * len(runs)
    held = sorted({text_of(j.task) for run in runs for j in run.jobs})
    unknown = [t for t in dict.fromkeys(tasks) if t not in held]
    if unknown:
        raise GenbenchError(f"unknown task {', '.join(repr(neutralise_controls(t)) for t in unknown)}: the runs "
                            f"hold {', '.join(neutralise_controls(t) for t in held) or 'no task'}; pass one of them "
                            "to --task, or leave it out.")
    unique: dict[str, tuple[RunResult, Path | None]] = {}
    for run, d in zip(runs, directories):
        unique.setdefault(text_of(run.run_id), (run, d))  # the same run given twice counts once
    sources = [Source(run, d, i) for i, (run, d) in enumerate(unique.values())]
    repeated = len(runs) - len(unique)
    ordered = sorted(sources, key=lambda s: (text_of(s.run.started_at, None), s.order))
    grouped: dict[str, dict[tuple, dict]] = {}
    for job, src, extra, pooled in pool_seeds(ordered, include, tasks):
        tkey = _table_key(job, src.run)
        unkeyed = src if _unkeyed(job) else None
        group = freeze(tkey) + ((("run", src.order),) if unkeyed else ())
        table = grouped.setdefault(job.task, {}).setdefault(group, {"shared": tkey, "rows": {},
                                                                    "unkeyed": unkeyed})
        rows: dict = table["rows"]
        slot = rows.setdefault((job.model, job.device), {"latest": None, "cells": {}})
        slot["latest"] = (job, src)
        slot.setdefault("extra", []).extend(extra)
        slot["pooled"] = pooled or slot.get("pooled")
        for metric, mv in _metrics(job).items():
            slot["cells"][(metric, column_group(mv, job.task))] = (mv, src)
    tables: list[Table] = []
    for task, by_key in grouped.items():
        task_tables = [_make_table(task, spec["shared"], spec["rows"]) for spec in by_key.values()]
        for t, spec in zip(task_tables, by_key.values()):
            t.unkeyed = spec["unkeyed"]
        _title(task_tables)
        tables += task_tables
    warnings = _mixing_warnings(tables) + _unkeyed_warnings(tables)
    if repeated:
        warnings.append(f"warning: {repeated} run(s) given more than once (the same run_id); each counted once")
    return Board(sources=sources, tables=tables, warnings=warnings)


def _pool_signature(job: JobResult) -> tuple | None:
    """What two runs' results of a model must share to be pooled over seeds: task, model, device and every
    metric's column group (key, unit, direction) but for the seeds; None when the job cannot be pooled (not ok,
    no per-seed results, numbers without a full key)."""
    if job.status != "ok" or not job.seed_results or _unkeyed(job):
        return None
    groups = []
    for metric, mv in sorted(_metrics(job).items()):
        key = {**key_of(mv, job.task), "seeds": None}
        groups.append((metric, freeze(key), text_of(mv.unit), direction(mv)))
    return (job.task, job.model, job.device, tuple(groups))


def _same_result(a: Any, b: Any) -> bool:
    """Whether two per-seed results are one build scored twice (a cache-restored rerun): the same model cache key,
    or every quality value equal."""
    ka, kb = mapping(a.cache).get("key"), mapping(b.cache).get("key")
    if ka and kb and ka == kb:
        return True
    qa, qb = a.quality, b.quality
    return set(qa) == set(qb) and all(number(qa[m].value) == number(qb[m].value) for m in qa)


def pool_seeds(ordered: Sequence[Source], include: Sequence[str], tasks: Sequence[str]) -> list[tuple]:
    """``(job, source, all sources, pooled text or None)`` for every job the board shows, in run order. Jobs of
    the same model, task, device and key that come from several runs and differ only in their training seeds
    are pooled into one job whose numbers are the mean over the union of seeds (``aggregate_quality``), shown
    where the latest of them was. One seed given twice with different results is an error
    (:class:`GenbenchError`): a mean counts each seed once, and the latest run silently winning would let a
    re-run until a good seed comes up go unseen. The same build given twice (a cache-restored rerun) counts once."""
    entries = [(job, src) for src in ordered for job in src.run.jobs
               if job.status in include and not (tasks and job.task not in tasks)]
    by_signature: dict[tuple, list[int]] = {}
    for i, (job, _) in enumerate(entries):
        sig = _pool_signature(job)
        if sig is not None:
            by_signature.setdefault(sig, []).append(i)
    replaced: dict[int, tuple] = {}
    dropped: set[int] = set()
    for members in by_signature.values():
        runs = {entries[i][1].order for i in members}
        if len(runs) < 2:
            continue
        seeds: dict[int, tuple[Any, Source]] = {}
        for i in members:
            job, src = entries[i]
            for sr in job.seed_results:
                if sr.status != "ok":
                    continue
                if sr.seed in seeds and not _same_result(seeds[sr.seed][0], sr):
                    other = seeds[sr.seed][1]
                    raise GenbenchError(
                        f"seed {sr.seed} of {neutralise_controls(job.model)} on {neutralise_controls(job.task)} is in "
                        f"runs {neutralise_controls(text_of(other.run.run_id))} and "
                        f"{neutralise_controls(text_of(src.run.run_id))} with different results: a mean over seeds "
                        "counts each seed once; leave one of the runs out, or train the other with a new seed")
                seeds[sr.seed] = (sr, src)  # the later run's copy of a repeated build
        ordered_seeds = sorted(seeds)
        latest_index = members[-1]
        latest_job, latest_src = entries[latest_index]
        pooled_results = tuple(seeds[k][0] for k in ordered_seeds)
        by_run: dict[int, list[int]] = {}
        for k in ordered_seeds:
            by_run.setdefault(seeds[k][1].order, []).append(k)
        srcs = {entries[i][1].order: entries[i][1] for i in members}
        text = (f"pooled over seeds {', '.join(map(str, ordered_seeds))} from runs "
                + ", ".join(f"{text_of(srcs[o].run.run_id)} (seed{'s' if len(ks) > 1 else ''} "
                            f"{', '.join(map(str, ks))})" for o, ks in sorted(by_run.items())))
        pooled = replace(latest_job, seeds=tuple(ordered_seeds), seed_results=pooled_results,
                         quality=aggregate_quality(pooled_results))
        replaced[latest_index] = (pooled, latest_src, sorted(srcs.values(), key=lambda s: s.order),
                                  text if len(ordered_seeds) > len(latest_job.seeds) else None)
        dropped |= set(members[:-1])
    return [replaced.get(i, (job, src, [src], None)) for i, (job, src) in enumerate(entries) if i not in dropped]


def _make_table(task: str, shared: dict[str, Any], slots: Mapping[tuple, dict]) -> Table:
    table = Table(task=task, shared=shared)
    columns: dict[tuple, Column] = {}
    for metric in _metric_order(slots.values()):
        groups: dict[tuple, list] = {}
        for slot in slots.values():
            for (m, group), (mv, src) in slot["cells"].items():
                if m == metric:
                    groups.setdefault(group, []).append((mv, src))
        ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), text_of(kv[0], None)))
        for (group, values), (label, fields) in zip(ordered, column_labels(metric, [g for g, _ in ordered])):
            key, unit = dict(group[0]), group[1]
            while any(c.label == label for c in columns.values()):
                label += "′"
            first = values[0][0]
            hib, target = direction(first)
            columns[(metric, group)] = Column(metric=metric, key=key, label=label, split=fields,
                                              higher_is_better=hib, target=target, unit=unit,
                                              scale=scale_of(metric, first, key), spread=_spread(values, key),
                                              runs={src.order for _, src in values})
    table.columns = list(columns.values())
    for slot in slots.values():
        job, src = slot["latest"]
        row = Row(job=job, source=src, reference=reference_kind(job))
        for (metric, group), (mv, cell_src) in slot["cells"].items():
            row.cells[columns[(metric, group)].label] = Cell(mv, cell_src, metric)
        row.sources = sorted({s.order: s for s in [c.source for c in row.cells.values()] + list(slot.get("extra", ()))
                              }.values(), key=lambda s: s.order) or [src]
        row.pooled = slot.get("pooled")
        row.flags, row.copies = row_flags(row.cells)
        row.replayed = row_replayed(row.cells)
        table.runs |= {s.order for s in row.sources} | {src.order}
        table.rows.append(row)
    _rank(table)
    return table


def column_labels(metric: str, groups: Sequence[tuple]) -> list[tuple[str, tuple[str, ...]]]:
    """(label, the key fields it was split on) for each column of ``metric``; a group is
    ``(freeze(key), unit, higher_is_better)``. One group: the metric's name; several: the name with the
    fields in which they differ, e.g. ``bpd [data variant binarized, likelihood iwae]``."""
    keys = [(dict(g[0]), g[1]) for g in groups]
    split: list[str] = []
    for i, (ka, ua) in enumerate(keys):
        for kb, ub in keys[i + 1:]:
            split += [f for f in KEY_FIELDS if ka.get(f) != kb.get(f) and f not in split]  # within one table
            if ua != ub and "unit" not in split:
                split.append("unit")
    fields = tuple(f for f in KEY_FIELDS if f in split)
    if len(keys) == 1:
        return [(metric, ())]
    return [(f"{metric} [{_describe(key, fields, unit, 'unit' in split)}]", fields) for key, unit in keys]


def _metric_order(slots: Iterable[dict]) -> list[str]:
    """The metrics of a table, most widely reported first, then in METRIC_ORDER, then by name."""
    counts: dict[str, int] = {}
    for slot in slots:
        for m in dict.fromkeys(m for m, _ in slot["cells"]):
            counts[m] = counts.get(m, 0) + 1
    rank = {m: i for i, m in enumerate(METRIC_ORDER)}
    return sorted(counts, key=lambda m: (-counts[m], rank.get(m, len(rank)), m))


def _describe(key: Mapping[str, Any], fields: Sequence[str], unit: str, with_unit: bool) -> str:
    text = describe(key, fields) if fields else ""
    if with_unit:
        text = (text + ", " if text else "") + f"unit {unit or 'none'}"
    return text


def _extractor_name(key: Mapping[str, Any], mv: MetricValue) -> str:
    ext = key.get("extractor") or mv.extractor
    return text_of(ext).split("@", 1)[0] if ext not in (None, UNKNOWN) else "task's"


def scale_of(metric: str, mv: MetricValue, key: Mapping[str, Any]) -> str:
    """A metric's unit and scale in words: its recorded unit, or for a unitless built-in what the number is."""
    unit = text_of(mv.unit)
    if metric in SCALES and not unit:
        return SCALES[metric].format(fs=_extractor_name(key, mv))
    return unit or "no unit given"


def _spread(values: Sequence[tuple[MetricValue, Source]], key: Mapping[str, Any]) -> str:
    mvs = [mv for mv, _ in values]
    if any(number(mv.seed_std) is not None for mv in mvs):
        return (f"± (seed sd) is the standard deviation over {text_of(key.get('seeds'))} training seeds, "
                "[a, b] the 95% t-interval of their mean")
    sampled = [mv for mv in mvs if sampling_interval(mv) is not None]
    if sampled:
        kinds = "; ".join(dict.fromkeys(text_of(mv.interval_of or "how it was made not recorded", 300)
                                        for mv in sampled))
        return f"[a, b] is the 95% sampling interval of one run's value ({kinds})"
    if any(number(mv.stderr) is not None for mv in mvs):
        over = next((mapping(mv.params).get("stderr_of") for mv in mvs if mapping(mv.params).get("stderr_of")), None)
        return (f"± (se) is the standard error over {text_of(over)}" if over else
                f"± (se) is the standard error of the mean over the n = {text_of(key.get('n'))} examples")
    std_of = next((mv.std_of for mv in mvs if mv.std_of), None)
    if any(number(mv.std) is not None for mv in mvs):
        over = f"over {text_of(std_of)}" if std_of else "over repeats of the estimate"
        return f"± (spread) is the standard deviation {over}: a spread, not a standard error"
    return ""


def _pair(value: Any) -> tuple[float, float] | None:
    """A stored ``[low, high]`` as two finite floats with low <= high, or None."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        lo, hi = number(value[0]), number(value[1])
        if lo is not None and hi is not None and lo <= hi:
            return float(lo), float(hi)
    return None


def sampling_interval(mv: MetricValue) -> tuple[float, float] | None:
    """The 95% sampling interval of a single run's value (``MetricValue.interval``: a bootstrap over samples and
    reference, an exact binomial interval, a fit's interval), where it holds the value; else None."""
    v = number(mv.value)
    iv = _pair(mv.interval)
    return iv if iv is not None and v is not None and iv[0] <= v <= iv[1] else None


def interval(mv: MetricValue) -> tuple[float, float] | None:
    """The interval a rank is read from: the seeds' 95% t-interval, else the run's 95% sampling interval, else
    value ± 1.96 se, else the value."""
    v = number(mv.value)
    if v is None:
        return None
    ci = _pair(mv.ci95)
    if ci is not None and ci[0] <= v <= ci[1]:
        return ci
    iv = sampling_interval(mv)
    if iv is not None:
        return iv
    se = number(mv.stderr)
    if se is not None and se >= 0:
        return v - Z95 * se, v + Z95 * se
    return v, v


def value_range(metric: str, mv: MetricValue | None = None) -> tuple[float, float | None] | None:
    """The range a metric's values cannot leave: :data:`RANGES` for a built-in, narrowed by the value's own
    ``params["range"]`` (``modes-covered``: 0 to the number of modes), or None (unbounded)."""
    own = _pair(mapping(mv.params).get("range")) if mv is not None else None
    known = RANGES.get(metric)
    if own is None:
        return known
    if known is None:
        return own
    return max(own[0], known[0]), own[1] if known[1] is None else min(own[1], known[1])


def shown_interval(cell: Cell) -> tuple[float, float, str, bool] | None:
    """(low, high, kind, clipped) of the interval a cell shows: the seeds' 95% t-interval (kind ``seeds``) where
    there are several seeds, else the run's sampling interval (``sampling``); clipped to the metric's range."""
    mv = cell.value
    if number(mv.seed_std) is not None and _pair(mv.ci95) is not None:
        (lo, hi), kind = _pair(mv.ci95), "seeds"  # type: ignore[misc]
    elif sampling_interval(mv) is not None:
        (lo, hi), kind = sampling_interval(mv), "sampling"  # type: ignore[misc]
    else:
        return None
    a, b, cut = clipped(cell.metric, lo, hi, mv)
    return a, b, kind, cut


#: a seed sd below this fraction of the value's size is round-off (a deterministic model), shown as 0
SEED_SD_RELATIVE_ZERO = 1e-9


def seed_sd(mv: MetricValue) -> float | None:
    """The seeds' standard deviation as shown: 0 where it is below 1e-9 of the value (round-off)."""
    sd, v = number(mv.seed_std), number(mv.value)
    if sd is None:
        return None
    return 0.0 if v is not None and abs(sd) <= SEED_SD_RELATIVE_ZERO * max(abs(v), 1e-300) else sd


def rank_ranges(intervals: Sequence[tuple[float, float]], higher_is_better: bool) -> list[tuple[int, int]]:
    """For each interval: (1 + how many lie wholly better, how many do not lie wholly worse, itself included)."""
    oriented = [(-hi, -lo) if higher_is_better else (lo, hi) for lo, hi in intervals]
    out = []
    for i, (lo, hi) in enumerate(oriented):
        better = sum(1 for j, (lo2, hi2) in enumerate(oriented) if j != i and hi2 < lo)
        worse = sum(1 for j, (lo2, hi2) in enumerate(oriented) if j != i and lo2 > hi)
        out.append((1 + better, len(oriented) - worse))
    return out


def _rank(table: Table) -> None:
    ranked = [r for r in table.rows if r.reference is None and r.not_ranked is None]
    directed = [c for c in table.columns if c.higher_is_better is not None]  # never by a two-sided metric
    first_metric = directed[0].metric if directed else None
    candidates = [c for c in directed if c.metric == first_metric]
    by = max(candidates, key=lambda c: sum(1 for r in ranked if c.label in r.cells
                                           and number(r.cells[c.label].value.value) is not None), default=None)
    table.rank_by = by

    def value(r: Row) -> tuple:
        v = number(r.cells[by.label].value.value) if by is not None and by.label in r.cells else None
        return (1, 0.0, r.model) if v is None else (0, -v if by.higher_is_better else v, r.model)

    ranked.sort(key=value)
    scored = [r for r in ranked if value(r)[0] == 0]
    if by is not None and scored:
        ivs = [interval(r.cells[by.label].value) for r in scored]
        for r, rank in zip(scored, rank_ranges(ivs, by.higher_is_better)):  # type: ignore[arg-type]
            r.rank = rank
    base = next((r for r in table.rows if r.model == BASELINE_MODEL and by is not None and by.label in r.cells
                 and interval(r.cells[by.label].value) is not None), None)
    if base is not None and by is not None:
        lo_b, hi_b = interval(base.cells[by.label].value)  # type: ignore[misc]
        for r in scored:
            lo, hi = interval(r.cells[by.label].value)  # type: ignore[misc]
            if (hi < lo_b) if by.higher_is_better else (lo > hi_b):
                r.worse_than_baseline = BASELINE_MODEL
    unranked = sorted((r for r in table.rows if r.reference is None and r.not_ranked is not None), key=value)
    refs = sorted((r for r in table.rows if r.reference is not None), key=value)
    table.rows = ranked + unranked + refs


def _title(tables: list[Table]) -> None:
    if len(tables) < 2:
        return
    keyed = [t for t in tables if t.unkeyed is None]
    fields = [f for f in TABLE_FIELDS if len({freeze({f: t.shared.get(f)}) for t in keyed}) > 1]
    for t in keyed:
        t.title = describe(t.shared, fields)
    for t in tables:
        if t.unkeyed is not None:
            t.title = f"run {text_of(t.unkeyed.run.run_id)} alone: {_keyless(t.unkeyed)}"


def _keyless(src: Source) -> str:
    return f"its numbers record no full comparability key ({text_of(src.run.schema)})"


def _unkeyed_warnings(tables: Sequence[Table]) -> list[str]:
    """One line naming the runs whose numbers record no full key and were kept apart from other runs'."""
    by_task: dict[str, list[Table]] = {}
    for t in tables:
        by_task.setdefault(t.task, []).append(t)
    apart = [t for ts in by_task.values() if len(ts) > 1 for t in ts if t.unkeyed is not None]
    if not apart:
        return []
    runs = ", ".join(dict.fromkeys(f"{text_of(t.unkeyed.run.run_id)} ({text_of(t.unkeyed.run.schema)})"
                                   for t in apart if t.unkeyed is not None))
    tasks = ", ".join(dict.fromkeys(t.task for t in apart))
    return [neutralise_controls(f"warning: run(s) {runs} record no full comparability key (on {tasks}): a field "
                                "not recorded equals nothing, so each such run's numbers are in a table of its "
                                "own, never ranked beside another run's", limit=2000)]


def _mixing_warnings(tables: Sequence[Table]) -> list[str]:
    """One line naming what differs between numbers that came from different runs and were kept apart."""
    fields: list[str] = []
    where: list[str] = []
    by_task: dict[str, list[Table]] = {}
    for t in tables:
        by_task.setdefault(t.task, []).append(t)
    for task, ts in by_task.items():
        for i, a in enumerate(ts):
            for b in ts[i + 1:]:
                if not (a.runs & b.runs) and a.unkeyed is None and b.unkeyed is None:
                    diff = [f for f in TABLE_FIELDS if freeze({f: a.shared.get(f)}) != freeze({f: b.shared.get(f)})]
                    fields += diff
                    where.append(f"{task}: separate tables by {', '.join(FIELD_LABELS.get(f, f) for f in diff)}")
        for t in ts:
            cols = t.columns
            for i, a in enumerate(cols):
                for b in cols[i + 1:]:
                    if a.metric == b.metric and not (a.runs & b.runs):
                        diff = list(a.split) or ["unit"]
                        fields += diff
                        where.append(f"{task}: {a.metric} in separate columns by "
                                     f"{', '.join(FIELD_LABELS.get(f, f) for f in diff)}")
    if not where:
        return []
    named = ", ".join(dict.fromkeys(FIELD_LABELS.get(f, f) for f in fields))
    return [neutralise_controls(f"warning: the merged runs differ in {named} ({'; '.join(dict.fromkeys(where))}); "
                                "those numbers are shown apart, never ranked together", limit=2000)]


# --------------------------------------------------------------------------- rendering helpers


def rank_text(rank: tuple[int, int] | None) -> str:
    if rank is None:
        return "–"
    return str(rank[0]) if rank[0] == rank[1] else f"{rank[0]}–{rank[1]}"


def _sig(v: Any) -> str:
    return fmt_num(v, "{:.4g}")


def _cells(table: Table, column: Column) -> list[Cell]:
    return [c for r in table.rows for c in [r.cells.get(column.label)] if c is not None]


def _clipped(cell: Cell) -> bool:
    shown = shown_interval(cell)
    return shown is not None and shown[3]


def floor_n(mv: MetricValue) -> Any:
    """How many real examples a floor was computed from where that is not the row's ``n`` (``params.floor_n``:
    the memorisation metrics' held-out references are half the test split, whatever n is), else None."""
    fn = mapping(mv.params).get("floor_n")
    return fn if number(fn) is not None and fn != number(mv.n) else None


def clipped(metric: str, lo: Any, hi: Any, mv: MetricValue | None = None) -> tuple[Any, Any, bool]:
    """An interval clipped to the range the metric's values cannot leave (:func:`value_range`): a fraction's
    interval ends at 0 and 1, ``modes-covered``'s at the number of modes. The third item says whether it was
    clipped."""
    span = value_range(metric, mv)
    if span is None or number(lo) is None or number(hi) is None:
        return lo, hi, False
    low, high = span
    a, b = max(lo, low), (hi if high is None else min(hi, high))
    return a, b, (a, b) != (lo, hi)


def cell_text(cell: Cell | None, floor: bool = True) -> str:
    """``42.6 ± 3.1 (seed sd) [38.2, 47.0] · floor 2.41``: the value, its spread labelled, and the floor (with
    its own n where that is not the row's)."""
    if cell is None:
        return "–"
    mv = cell.value
    v = number(mv.value)
    if v is None:
        return "error" if mv.error else "–"
    text = _sig(v)
    sd, se, std = seed_sd(mv), number(mv.stderr), number(mv.std)
    shown = shown_interval(cell)
    if sd is not None:
        text += f" ± {fmt_num(sd, '{:.2g}')} (seed sd)"
    if shown is not None:
        lo, hi, kind, cut = shown
        text += f" [{_sig(lo)}, {_sig(hi)}]"
        if cut:
            low, high = value_range(cell.metric, mv)  # type: ignore[misc]
            text += f" (clipped to {low:g}–{high:g})" if high is not None else f" (clipped at {low:g})"
    if sd is None and shown is None:  # no interval: the one ± there is
        if se is not None:
            text += f" ± {fmt_num(se, '{:.2g}')} (se)"
        elif std is not None:
            text += f" ± {fmt_num(std, '{:.2g}')} (spread)"
    if floor and number(mv.floor) is not None:
        text += f" · floor {_sig(mv.floor)}"
        fi = _pair(mv.floor_interval)
        if fi is not None:
            text += f" [{_sig(fi[0])}, {_sig(fi[1])}]"
            position = floor_position(mv)
            if position == "within":
                text += " (within the floor's spread: real data at n)"
            elif position == "beyond":
                text += " (⚠ beyond the floor: better than real data at n)"
        if floor_n(mv) is not None:
            text += f" (from {text_of(floor_n(mv))} held-out examples)"
    return text


def floor_position(mv: MetricValue) -> str | None:
    """Where a value stands against its floor's 95% interval over training subsets (``floor_interval``):
    ``within`` it (indistinguishable from real data at this n), ``beyond`` it (better than real data: suspect,
    e.g. replayed or copied data), ``short`` of it, or None (no floor interval, or a two-sided metric)."""
    v, fi = number(mv.value), _pair(mv.floor_interval)
    if v is None or fi is None or mv.higher_is_better is None:
        return None
    if fi[0] <= v <= fi[1]:
        return "within"
    better = v > fi[1] if mv.higher_is_better else v < fi[0]
    return "beyond" if better else "short"


def floor_text(table: Table, column: Column, fmt: Callable[[Any], str] | None = None) -> str:
    """The column's floor for the floor row (``fmt``: how a number is written), a range where rows' floors differ."""
    fmt = fmt or _sig
    span = table.floor(column)
    if span is None:
        return "–"
    lo, hi = span
    text = fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)} to {fmt(hi)}"
    own = sorted({text_of(floor_n(c.value)) for c in _cells(table, column) if floor_n(c.value) is not None})
    return text + (f" (from {', '.join(own)} held-out examples, not n)" if own else "")


def column_header(column: Column) -> str:
    unit = text_of(column.unit) if column.unit else ""
    unit = f", {unit}" if "(" in unit else f" ({unit})" if unit else ""  # never parentheses inside parentheses
    n = f" · n {text_of(column.n)}" if column.n is not None else ""  # a failed metric may have no n
    return f"{column.label}{unit} {arrow(column.higher_is_better, column.target)}{n}"


def column_note(column: Column) -> str:
    """What a column's numbers are: scale, direction, n, and for a likelihood its data variant and bound."""
    text = (f"{column.scale}; {better_text(column.higher_is_better, column.target)}"
            f"{'' if column.higher_is_better is not None else ' (either side is worse; never ranked by)'}; "
            f"n = {text_of(column.n)} scored")
    variant, bound = column.key.get("variant"), column.key.get("bound")
    if variant not in (None, UNKNOWN) or bound not in (None, UNKNOWN):
        text += f"; likelihood of {text_of(variant)} data, {text_of(bound)}"
    return text


def table_notes(table: Table) -> list[str]:
    """The notes under a table (plain text): one per column, then what ± and the floor mean, per group of
    columns, then which metrics have no value and why."""
    notes = [SMOKE_CAVEAT] if is_smoke(table) else []
    notes += [f"{c.label}: {column_note(c)}" for c in table.columns]
    spreads: dict[str, list[str]] = {}
    for c in table.columns:
        if c.spread:
            spreads.setdefault(c.spread, []).append(c.label)
    notes += [f"{spread} (in {', '.join(labels)})" for spread, labels in spreads.items()]
    floored = [c for c in table.columns if table.floor(c) is not None]
    if floored:
        ceilings = [c.label for c in floored if c.higher_is_better]
        notes.append(f"floor: real data scored the same way at the column's n (in {', '.join(c.label for c in floored)})"
                     + (f"; where higher is better it is what real data reaches, not a bound: a model can score above it "
                        f"(in {', '.join(ceilings)})" if ceilings else ""))
    own = [c.label for c in table.columns if any(floor_n(x.value) is not None for x in _cells(table, c))]
    if own:
        notes.append(f"except in {', '.join(own)}: there the floor is held-out real data of its own size (half the "
                     "test split, given beside it), not n examples")
    clips = [c.label for c in table.columns if any(_clipped(x) for x in _cells(table, c))]
    if clips:
        notes.append(f"a 95% interval that reaches past the metric's range is shown clipped to it, and says so (in "
                     f"{', '.join(clips)}); run.json keeps the interval as computed")
    if table.rank_by is not None:
        notes.append(f"#: rank by {table.rank_by.label}; a range (2–3) where the models' intervals overlap "
                     "(the seeds' 95% t-interval, else the run's 95% sampling interval, else value ± 1.96 se, else "
                     "the value)")
    notes += [f"{r.model}: {r.pooled}" for r in table.rows if r.pooled]
    worse = [r.model for r in table.rows if r.worse_than_baseline]
    if worse and table.rank_by is not None:
        notes.append(f"worse than {BASELINE_MODEL} on {table.rank_by.label} (its interval lies wholly worse than the "
                     f"baseline's): {', '.join(worse)}")
    notes += [f"{r.model}: {label} has no value: {err}" for r, label, err in metric_errors(table)]
    notes += [f"⚠ {r.model}: {flag}" for r in table.rows for flag in r.flags]
    notes += [f"{r.model}: not ranked (–): "
              + "; ".join([f"it {r.copies}"] * bool(r.copies) + [f"it is {r.replayed}"] * bool(r.replayed))
              + ", so it is no competitor" for r in table.rows if r.not_ranked]
    return notes


def model_mark(r: Row) -> str:
    """What is shown beside a model's name: "⚠ copies training data", "⚠ flagged", "worse than
    baseline-gaussian", or nothing."""
    marks = ([f"⚠ {r.copies}"] if r.copies else []) + ([f"⚠ {r.replayed}"] if r.replayed else [])
    marks = marks or (["⚠ flagged (see notes)"] if r.flags else [])
    if r.worse_than_baseline:
        marks.append(f"worse than {r.worse_than_baseline}")
    return "; ".join(marks)


#: what every table of the smoke profile says first: its numbers are no result
SMOKE_CAVEAT = "smoke profile: a check that the pipeline runs, not a result"
#: the trivial model a table's models are held against on its first metric
BASELINE_MODEL = "baseline-gaussian"


def is_smoke(table: Table) -> bool:
    """Whether the table's numbers come from the smoke profile (a tiny training budget)."""
    return str(table.shared.get("profile") or "").split(",")[0].strip() == "smoke"


def environment(run: RunResult) -> str:
    e = mapping(run.environment)
    gpus = e.get("gpus")
    gpu_text = ", ".join(text_of(g) for g in gpus) if isinstance(gpus, list) else ""
    hw = gpu_text or f"{text_of(e.get('cpu'))} ×{text_of(e.get('cpu_count'))}"
    return f"{hw}; torch {text_of(e.get('torch'))}, ORT {text_of(e.get('onnxruntime'))}"


def row_machine(r: Row) -> str | None:
    """The identity of the machine behind a row's per-sample speed figures (:func:`safe_perf_summary`'s
    ``machines``; several joined with "+"), or None when they record none (a run from before identities)."""
    machines = safe_perf_summary(r.job).get("machines") or []
    return "+".join(text_of(m, 40) for m in machines) or None


def _has_speed(r: Row) -> bool:
    p = safe_perf_summary(r.job)
    return p["unit"] == "samples/s" and (number(p["ort_p50_ms_b1"]) is not None
                                         or number(p["ort_best_throughput"]) is not None)


def speed_machines(table: Table) -> dict[str | None, list[Row]]:
    """The rows with per-sample speed figures, by the machine that measured them (in row order). More than one
    key: the table mixes machines, and its speed figures are not comparable across them."""
    out: dict[str | None, list[Row]] = {}
    for r in table.rows:
        if _has_speed(r):
            out.setdefault(row_machine(r), []).append(r)
    return out


def machine_text(identity: str | None, rows: Sequence[Row]) -> str:
    """One line naming a machine and its two limits, from the environment of the first run among ``rows`` that
    recorded that machine: ``AMD EPYC (family 26 …) [d28643f96dea]; physical peak 482 GFLOP/s (3.77 GHz × 64
    FLOP/cycle × 2 threads); GEMM ceiling 181 GFLOP/s``."""
    from ..perf.machine import describe
    from ..runtime.flops import ceiling_value

    if identity is None:
        return "a machine its run did not identify (written before machine identities; see Environment)"
    for r in rows:
        env = mapping(r.source.run.environment)
        machine = mapping(env.get("machine"))
        if machine.get("identity") != identity:
            continue
        text = neutralise_controls(describe(machine), limit=300)
        peak = mapping(env.get("physical_peak"))
        g = number(peak.get("gflops_per_s"))
        if g is not None:
            parts = [f"{number(peak.get('clock_ghz')) or 0:.2f} GHz", f"{number(peak.get('flop_per_cycle')) or 0:g} FLOP/cycle",
                     f"{text_of(peak.get('threads'))} threads"]
            text += f"; physical peak {g:,.0f} GFLOP/s ({' × '.join(parts)})"
        c = ceiling_value(mapping(env.get("matmul_gflops")))
        if c is not None:
            text += f"; GEMM ceiling {c:,.0f} GFLOP/s"
        return text
    return f"machine {text_of(identity, 40)}"


def shared_text(table: Table) -> str:
    return describe(table.shared, [f for f in TABLE_FIELDS if table.shared.get(f) is not None])


def metric_errors(table: Table) -> list[tuple[Row, str, str]]:
    return [(r, label, text_of(c.value.error)) for r in table.rows for label, c in r.cells.items()
            if number(c.value.value) is None and c.value.error]


# --------------------------------------------------------------------------- CSV and JSON


def error_of(mv: MetricValue) -> tuple[str | None, float | None, str | None]:
    """(kind, size, over what) of the one ± a cell shows: the seeds' sd, else the standard error, else the
    spread; "over what" names that same one (``3 training seeds``, ``450 test images``, ``100 subsets of
    1000``), so a row never pairs one kind with another's count."""
    if number(mv.seed_std) is not None:
        k = len(mv.per_seed) if isinstance(mv.per_seed, (list, tuple)) else None
        return "seed sd", seed_sd(mv), f"{k} training seeds" if k else "training seeds"
    if number(mv.stderr) is not None:
        over = mapping(mv.params).get("stderr_of")
        return "se", number(mv.stderr), text_of(over) if over else f"{text_of(mv.n)} examples"
    if number(mv.std) is not None:
        return "spread", number(mv.std), text_of(mv.std_of) if mv.std_of else "repeats of the estimate"
    return None, None, None


def _cell_dict(cell: Cell | None) -> dict[str, Any]:
    if cell is None:
        return {"value": None}
    mv = cell.value
    ci = mv.ci95 if isinstance(mv.ci95, (list, tuple)) and len(mv.ci95) == 2 else None
    err_kind, err, err_of = error_of(mv)
    shown = shown_interval(cell)
    sampled = sampling_interval(mv)
    return {"value": number(mv.value), "err": err, "err_kind": err_kind, "err_of": err_of,
            "interval": None if sampled is None else list(clipped(cell.metric, *sampled, mv)[:2]),
            "interval_of": None if sampled is None or mv.interval_of is None else text_of(mv.interval_of),
            "shown_interval": None if shown is None else {"low": shown[0], "high": shown[1], "kind": shown[2],
                                                          "clipped": shown[3]},
            "floor_interval": None if _pair(mv.floor_interval) is None else list(_pair(mv.floor_interval)),
            "floor_n": floor_n(mv),
            "stderr": number(mv.stderr), "std": number(mv.std),
            "std_of": None if mv.std_of is None else text_of(mv.std_of),
            "seed_std": number(mv.seed_std),
            "ci95": [number(ci[0]), number(ci[1])] if ci and None not in (number(ci[0]), number(ci[1])) else None,
            "per_seed": [number(v) for v in mv.per_seed] if isinstance(mv.per_seed, (list, tuple)) else None,
            "floor": number(mv.floor), "n": number(mv.n), "error": None if mv.error is None else text_of(mv.error),
            "run_id": text_of(cell.source.run.run_id)}


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become null, keys and strings stay strings, ints beyond float range stay."""
    if isinstance(value, float):
        return value if number(value) is not None else None
    if isinstance(value, dict):
        return {text_of(k, None): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return text_of(value)


def _row_dict(table: Table, r: Row) -> dict[str, Any]:
    p = safe_perf_summary(r.job)
    env = mapping(r.source.run.environment)
    return {"model": r.model, "family": r.job.family, "plugin": r.job.plugin, "plugin_version": r.job.plugin_version,
            "device": r.job.device, "reference": r.reference, "flags": list(r.flags), "copies": r.copies,
            "not_ranked": r.not_ranked,
            "rank": None if r.rank is None else rank_text(r.rank),
            "rank_low": None if r.rank is None else r.rank[0], "rank_high": None if r.rank is None else r.rank[1],
            "cells": {c.label: _cell_dict(r.cells.get(c.label)) for c in table.columns},
            "ort_p50_ms_b1": number(p["ort_p50_ms_b1"]), "ort_best_throughput": number(p["ort_best_throughput"]),
            "torch_best_throughput": number(p["torch_best_throughput"]),
            "ort_best_share_of_peak": number(p["ort_best_share_of_peak"]), "speed_machine": row_machine(r),
            "speed_unit": p["unit"] if p["unit"] == "samples/s" else None,
            "timing_valid": p["valid"] if isinstance(p["valid"], bool) else None,
            "timing_noisy": p["noisy"] if isinstance(p["noisy"], bool) else None,
            "genbench_version": r.source.version, "git_commit": text_of(env.get("git_commit") or UNKNOWN),
            "provenance": r.provenance, "run_id": text_of(r.source.run.run_id),
            "run_ids": [text_of(s.run.run_id) for s in r.sources], "pooled": r.pooled,
            "worse_than_baseline": r.worse_than_baseline,
            "environment": environment(r.source.run), "command": text_of(r.source.run.command, None)}


def to_dict(board: Board) -> dict[str, Any]:
    """The board as the ``genbench.leaderboard/2`` JSON document (schema ``leaderboard-2.schema.json``)."""
    tables = []
    for t in board.tables:
        floor = {c.label: (lambda s: None if s is None else {"low": s[0], "high": s[1]})(t.floor(c))
                 for c in t.columns}
        tables.append({
            "task": t.task, "title": t.title, "shared": {f: t.shared.get(f) for f in TABLE_FIELDS},
            "rank_by": None if t.rank_by is None else t.rank_by.label,
            "columns": [{"label": c.label, "metric": c.metric, "key": {f: c.key.get(f) for f in KEY_FIELDS},
                         "split": list(c.split), "unit": c.unit, "scale": c.scale,
                         "higher_is_better": c.higher_is_better, "target": c.target, "spread": c.spread,
                         "n": c.n} for c in t.columns],
            "rows": [_row_dict(t, r) for r in t.rows],
            "floor": floor,
        })
    return _clean({"schema": SCHEMA,
                   "runs": [{"run_id": s.run.run_id, "genbench_version": s.version, "git_commit": s.commit,
                             "started_at": s.run.started_at, "command": s.run.command} for s in board.sources],
                   "warnings": board.warnings, "tables": tables})


def render_json(runs: Sequence[RunResult], tasks: Iterable[str] = (), board: Board | None = None) -> str:
    return json.dumps(to_dict(board or build(runs, tasks)), indent=2, allow_nan=False, ensure_ascii=False)


CSV_CELL_FIELDS = ("value", "err", "err_kind", "err_of", "ci95_low", "ci95_high", "floor", "floor_n", "n",
                   "interval_low", "interval_high", "interval_of")


def render_csv(runs: Sequence[RunResult], tasks: Iterable[str] = (), board: Board | None = None) -> str:
    """One row per table row (reference rows and the floor row included, marked in ``reference``); per
    column label: value, err with err_kind (se, spread or seed sd) and err_of (over what that one ± is), the 95%
    interval, floor and floor_n (only where the floor is not at n), n, unit."""
    board = board or build(runs, tasks)
    labels = list(dict.fromkeys(c.label for t in board.tables for c in t.columns))
    header = ["task", "table", "rank", "rank_low", "rank_high", "reference", "not_ranked", "copies", "flags", "model",
              "family", "plugin", "plugin_version", "device"]
    for label in labels:
        header += [label] + [f"{label} {f}" for f in CSV_CELL_FIELDS[1:]] + [f"{label} unit"]
    header += ["ort_p50_ms_b1", "ort_best_throughput", "torch_best_throughput", "ort_best_share_of_peak",
               "speed_machine", "speed_unit", "timing_valid", "timing_noisy", "genbench_version", "git_commit", "run_id", "run_ids", "environment", "command"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([csv_cell(h) for h in header])
    for t in board.tables:
        units = {c.label: c.scale for c in t.columns}
        for r in t.rows:
            d = _row_dict(t, r)
            row: dict[str, Any] = {k: d[k] for k in ("rank", "rank_low", "rank_high", "reference", "model", "family",
                                                     "plugin", "plugin_version", "device", "ort_p50_ms_b1",
                                                     "ort_best_throughput", "torch_best_throughput",
                                                     "ort_best_share_of_peak", "speed_machine", "speed_unit",
                                                     "timing_valid", "timing_noisy", "genbench_version", "git_commit",
                                                     "run_id", "environment", "command")}
            row.update(task=t.task, table=t.title, run_ids=" ".join(d["run_ids"]), not_ranked=d["not_ranked"],
                       copies=d["copies"], flags="; ".join(d["flags"]))
            for label, cd in d["cells"].items():
                ci = cd.get("ci95") or [None, None]
                if cd.get("shown_interval") and cd["shown_interval"]["kind"] == "seeds":  # clipped to the range
                    ci = [cd["shown_interval"]["low"], cd["shown_interval"]["high"]]
                iv = cd.get("interval") or [None, None]
                row.update({f"{label} interval_low": iv[0], f"{label} interval_high": iv[1],
                            f"{label} interval_of": cd.get("interval_of")})
                row.update({label: cd["value"], f"{label} err": cd.get("err"), f"{label} err_kind": cd.get("err_kind"),
                            f"{label} err_of": cd.get("err_of"), f"{label} ci95_low": ci[0],
                            f"{label} ci95_high": ci[1], f"{label} floor": cd.get("floor"),
                            f"{label} floor_n": cd.get("floor_n"), f"{label} n": cd.get("n"),
                            f"{label} unit": units[label]})
            w.writerow([csv_cell(row.get(h)) for h in header])
        floors = {c.label: t.floor(c) for c in t.columns}
        if any(v is not None for v in floors.values()):
            row = {"task": t.task, "table": t.title, "reference": "real data at n (floor)", "model": "real data"}
            for c in t.columns:
                span = floors[c.label]
                row.update({c.label: None if span is None or span[0] != span[1] else span[0],
                            f"{c.label} floor": None if span is None else span[0], f"{c.label} n": number(c.n),
                            f"{c.label} unit": c.scale})
            w.writerow([csv_cell(row.get(h)) for h in header])
    return buf.getvalue()


def render(runs: Sequence[RunResult], fmt: str, tasks: Iterable[str] = (), board: Board | None = None,
           limits: Sequence[Any] = (), columns: Sequence[str] = ()) -> str:
    """The merged leaderboard of ``runs`` as ``md``, ``csv`` or ``json`` (``html``: :mod:`genbench.reports.html`);
    ``limits``: ``genbench limits`` studies appended as sections (``md`` only); ``columns``: the Markdown
    headline metrics (:mod:`genbench.reports.board_markdown`)."""
    board = board or build(runs, tasks)
    if fmt == "md":
        from .board_markdown import render_markdown
        from .limits import render_limits_markdown

        return render_markdown(runs, tasks, board=board, columns=columns) + "".join(
            "\n\n" + render_limits_markdown(study, plots={}) for study in limits)
    if limits:
        raise ValueError(f"limits studies are shown in the md and html formats, not in {fmt!r}")
    if fmt == "json":
        return render_json(runs, tasks, board=board)
    if fmt == "csv":
        return render_csv(runs, tasks, board=board)
    raise ValueError(f"unknown leaderboard format {fmt!r}; choose one of {', '.join(FORMATS)}")


__all__ = ["Board", "Cell", "Column", "FORMATS", "Row", "SCHEMA", "Source", "Table", "build", "cell_text", "clipped",
           "sampling_interval", "seed_sd", "shown_interval", "value_range",
           "copying", "error_of", "floor_n", "floor_position", "is_smoke", "model_mark", "replayed", "row_flags",
           "row_replayed", "SMOKE_CAVEAT",
           "build_from_dirs", "interval", "rank_ranges", "render", "render_csv", "render_json",
           "to_dict"]


def build_from_dirs(run_dirs: Sequence[Path | str], tasks: Iterable[str] = ()) -> tuple[Board, list[RunResult]]:
    """Load every run (schema-checked, one-line errors) and build their board; run directories are kept so
    that files the runs name are read only from inside them."""
    from ..results import load_run

    runs = [load_run(d) for d in run_dirs]
    dirs = [Path(d) if Path(d).is_dir() else Path(d).parent for d in run_dirs]
    return build(runs, tasks, dirs), runs
