"""The HTML leaderboard's structure, read from the page ``genbench leaderboard --format html --limits`` writes
(no browser: tests/test_html_browser.py renders it in chromium).

The board (tests/fakes_board.py) has three families, two reference rows, floors, three seeds, per-sample
timings of both runtimes, loss histories, a copying flag, more metric columns than fit a laptop screen and a
limits study.
"""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner
from fakes_board import COPY_FLAG, HOSTILE, METRICS, board_run, write_board_page

from genbench.cli import cli
from genbench.limits import load_limits
from genbench.reports import html as page_html
from genbench.reports.leaderboard import build, build_from_dirs
from genbench.types import PerfRecord

VOID = {"meta", "img", "br", "hr", "input", "link", "source", "col", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None):
        self.tag, self.attrs, self.parent, self.children, self.parts = tag, attrs, parent, [], []

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def descendants(self):
        for c in self.children:
            yield c
            yield from c.descendants()

    def all(self, tag: str, cls: str | None = None) -> list[Node]:
        return [n for n in self.descendants() if n.tag == tag and (cls is None or cls in n.classes)]

    def one(self, tag: str, cls: str | None = None) -> Node:
        (found,) = self.all(tag, cls)
        return found

    @property
    def text(self) -> str:
        return "".join(p if isinstance(p, str) else p.text for p in self.parts)


class Tree(HTMLParser):
    """A minimal DOM of the page (stdlib only): elements, attributes and text."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.root = self.node = Node("#document", {}, None)
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs}, self.node)
        self.node.children.append(node)
        self.node.parts.append(node)
        if tag not in VOID:
            self.node = node

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.node = self.node.parent

    def handle_endtag(self, tag):
        node = self.node
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.node = node.parent

    def handle_data(self, data):
        self.node.parts.append(data)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    run_dir, study_dir, page = write_board_page(tmp_path_factory.mktemp("board"))
    return run_dir, study_dir, page.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def doc(written):
    return Tree(written[2]).root


def cells_text(row: Node) -> list[str]:
    return [" ".join(td.text.split()) for td in row.children if td.tag == "td"]


def test_the_table_says_its_key_and_shows_references_and_the_floor_apart(doc):
    (table,) = doc.all("table", "sortable")
    key = doc.one("p", "key").text
    assert key.startswith("All numbers in this table: profile default, seeds 3, feature extractor digits-cnn@")
    ranked = [" ".join(tr.one("button", "name").text.split()) for tr in table.one("tbody", "ranked").all("tr", "ranked")]
    assert ranked == ["ar-pixel", "gan-mlp", "gan-lite", "vae-conv", "vae-mlp", "example-gan"]  # by fd, lower first
    refs = table.one("tbody", "references")
    assert " ".join(refs.one("tr", "ref-head").text.split()) == "references, not ranked"
    assert [cells_text(tr)[0] for tr in refs.all("tr", "ref")] == ["ref", "ref"]
    assert [tr.one("button", "name").text for tr in refs.all("tr", "ref")] == ["baseline-train-copy",
                                                                              "baseline-gaussian"]
    assert "replayed training data" in refs.all("tr", "ref")[0].text
    floor = cells_text(refs.one("tr", "floor"))
    assert floor[:3] == ["ref", "real data at n (floor)", "2.413"]  # fd's floor at n = 1,347
    assert "n 1,347" in table.all("th")[2].text  # the fd header names n


def test_ranks_are_ranges_and_every_spread_says_what_it_is(doc):
    table = doc.one("table", "sortable")
    ranks = [cells_text(tr)[0] for tr in table.one("tbody", "ranked").all("tr", "ranked")]
    assert ranks == ["1", "2–3", "2–3", "4–5", "4–5", "6"]
    fd_head = table.all("th")[2]
    assert fd_head.one("span", "m").text == "fd ↓" and "± seed sd" in fd_head.one("span", "sub").text
    gan = next(tr for tr in table.all("tr", "ranked") if tr.one("button", "name").text == "gan-mlp")
    fd = gan.all("td")[2]
    assert " ".join(fd.text.split()) == "42.60 ± 1.7 [38.35, 46.85]"  # mean ± seed sd, the 95% t-interval below
    assert "42.6 ± 1.7 (seed sd) [38.35, 46.85] · floor 2.413" == fd.attrs["title"]  # every format's cell text
    legend = doc.one("div", "legend").text
    assert "standard deviation over training seeds" in legend and "standard error over the n examples" in legend


def test_the_main_columns_fit_a_laptop_and_the_rest_are_one_click_away(doc):
    board = build([board_run()])
    (table,) = board.tables
    main = page_html.main_columns(table)
    assert table.rank_by in main and 3 <= len(main) <= page_html.MAIN_COLUMNS and len(main) < len(METRICS)
    heads = doc.one("table", "sortable").one("thead").all("th")
    hidden = [h.one("span", "m").text.split()[0] for h in heads if "sec" in h.classes]
    assert hidden == [c.label for c in table.columns if c not in main]
    button = doc.one("button", "show-all")
    assert button.text == f"Show {len(hidden)} more columns" and button.attrs["aria-controls"] == "task-digits-wrap"
    # a narrow budget keeps the ranking column, whatever its place
    rank_last = replace(table, columns=[c for c in table.columns if c is not table.rank_by] + [table.rank_by])
    assert page_html.main_columns(rank_last, budget=10) == [table.columns[1], table.rank_by]


def test_speed_columns_hold_per_sample_figures_only(doc):
    gan = next(tr for tr in doc.all("tr", "ranked") if tr.one("button", "name").text == "gan-mlp")
    ms, per_s = cells_text(gan)[-2:]
    assert ms == "0.00139" and per_s == "3.39M batch 64"  # ORT p50 at batch 1, best batch's samples/s
    # a job timed only as forward passes of a non-sample graph: no per-sample figure, never the forward pass
    run = board_run()
    forward = PerfRecord("onnxruntime", "CPUExecutionProvider", "cpu", 1, 2, 200, 0.5, {"p50": 0.01}, 1e5, True,
                         graph="logits", scenario="forward")
    jobs = tuple(replace(j, performance=(forward,)) if j.model == "ar-pixel" else j for j in run.jobs)
    text = page_html.render_board(build([replace(run, jobs=jobs)]))
    ar = next(tr for tr in Tree(text).root.all("tr", "ranked") if tr.one("button", "name").text == "ar-pixel")
    assert cells_text(ar)[-2:] == ["–", "–"]


def test_copying_flags_show_where_a_metric_flags_and_nowhere_else(doc):
    flagged = [tr for tr in doc.all("tr") if tr.all("span", "flag")]
    assert [tr.one("button", "name").text for tr in flagged] == ["baseline-train-copy"]
    badge = flagged[0].one("span", "flag")
    assert badge.text == "⚑ copy-ct" and COPY_FLAG in badge.attrs["title"]
    notes = [li.text for li in doc.all("li", "flagged")]
    assert notes == [f"⚑ baseline-train-copy: copy-ct: {COPY_FLAG}"]


def test_plots_are_inline_svg_one_loss_plot_per_family_with_paired_colours(doc, written):
    figures = {f.attrs["data-plot"]: f for f in doc.all("figure") if "data-plot" in f.attrs}
    assert set(figures) == {"pareto", "cost-vs-batch", "loss-ar", "loss-gan", "loss-vae",
                            "limits-quantity", "limits-quality", "limits-compute"}
    for name, fig in figures.items():
        svg = fig.one("svg")
        assert "plot" in svg.classes and "viewbox" in svg.attrs and "width" not in svg.attrs, name
    page = written[2]
    pngs = re.findall(r"<img[^>]*src='data:image/png", page)
    assert len(pngs) == len(board_run().jobs)  # the sample grids only: no plot is a PNG
    colours = page_html.model_colours(build([board_run()]))
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    tab20 = [to_hex(colormaps["tab20"](i)) for i in range(20)]
    models = [m for m in colours if not m.startswith("baseline")]
    for m in models:  # ONNX Runtime dark, torch eager light: one tab20 pair
        dark, light = colours[m]
        assert tab20.index(light) == tab20.index(dark) + 1 and tab20.index(dark) % 2 == 0
    assert len({colours[m] for m in models}) == len(models)
    assert colours["baseline-train-copy"] == colours["baseline-gaussian"] == page_html.REFERENCE_COLOURS
    cost = page[page.index("data-plot='cost-vs-batch'"):]
    cost = cost[:cost.index("</figure>")]
    assert f"stroke: {colours['gan-mlp'][0]}" in cost and f"stroke: {colours['gan-mlp'][1]}" in cost
    loss_gan = page[page.index("data-plot='loss-gan'"):]
    loss_gan = loss_gan[:loss_gan.index("</figure>")]
    assert colours["gan-mlp"][0] in loss_gan and colours["vae-mlp"][0] not in loss_gan


def test_details_rows_name_the_run_commit_machine_and_command(doc):
    details = doc.all("tr", "detail")
    assert len(details) == len(board_run().jobs) and all("hidden" in d.attrs for d in details)
    text = " ".join(details[0].text.split())
    for part in ("genbench 0.1.0 @ c0ffeec0ffee", "2026-11-29T10-00-00-abcdef", "AMD EPYC ×2",
                 "genbench run --all --seeds 0,1,2", "per generated sample"):
        assert part in text, part


def test_text_from_results_files_stays_text(written, doc):
    page = written[2]
    assert HOSTILE not in page and page.count("<script>") == 1  # only the page's own sorting script
    assert any(HOSTILE in " ".join(d.text.split()) for d in doc.all("tr", "detail"))  # shown, as text
    assert HOSTILE in doc.one("section", "limits").text


def test_a_limits_study_is_a_section_of_the_page_and_of_the_markdown(doc, written):
    run_dir, study_dir, _ = written
    section = doc.one("section", "limits")
    assert section.one("h2").text == "Limits of gan-mlp on digits"
    heads = [h.text for h in section.all("h3")]
    assert heads[:4] == ["What it shows", "Data quantity", "Data quality", "Compute"]
    quantity = section.all("table")[0]
    assert [th.text for th in quantity.all("th")] == ["training images", "gan-mlp fd ↓", "baseline-gaussian fd ↓",
                                                     "floor"]
    assert "Memorisation and train-on-synthetic at the reference point" in heads
    r = CliRunner().invoke(cli, ["leaderboard", str(run_dir), "--limits", str(study_dir)], catch_exceptions=False)
    assert r.exit_code == 0 and "## Limits of gan-mlp on `digits`" in r.stdout and "](" not in r.stdout.split(
        "## Limits of")[1]  # no image links that would not resolve beside the leaderboard
    r = CliRunner().invoke(cli, ["leaderboard", str(run_dir), "--format", "csv", "--limits", str(study_dir)])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "--limits adds a section to --format html or md" in r.output
    r = CliRunner().invoke(cli, ["leaderboard", str(run_dir), "--format", "html", "--limits", str(run_dir)])
    assert r.exit_code == 1 and r.output.startswith("error: No limits file at") and r.output.count("\n") == 1


def test_the_same_results_give_the_same_page(written):
    run_dir, study_dir, page = written
    board, _ = build_from_dirs([run_dir])
    assert page_html.render_board(board, limits=[load_limits(study_dir)]) + "\n" == page
