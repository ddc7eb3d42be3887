"""The Markdown leaderboard is readable where people publish it: a headline table per task of at most 8 columns
and 160 characters a row, what rows share stated once, every metric kept in the details (issue #29)."""

from __future__ import annotations

import re

from click.testing import CliRunner

import fakes_board
from genbench.cli import cli
from genbench.reports.leaderboard import render

MAX_ROW = 160


def tables_outside_details(md: str) -> list[list[str]]:
    """The Markdown tables (their lines) that are not inside a <details> block."""
    out: list[list[str]] = []
    inside, current = False, None
    for line in md.splitlines():
        if line.startswith("<details>"):
            inside = True
        elif line.startswith("</details>"):
            inside = False
        if line.startswith("|") and not inside:
            if current is None:
                current = []
                out.append(current)
            current.append(line)
        else:
            current = None
    return out


def cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def test_headline_tables_fit_a_laptops_github_view():
    md = render([fakes_board.board_run()], "md")
    (table,) = tables_outside_details(md)
    header = cells(table[0])
    assert len(header) <= 8 and header[:3] == ["#", "model", "family"]
    assert header[3:6] == ["fd ↓", "precision ↑", "recall ↑"]  # the task's headline metrics, by HEADLINE_ORDER
    assert header[6:] == ["ORT ms/sample @b1 ↓", "ORT samples/s (best batch) ↑"]
    too_long = [line for line in table if len(line) > MAX_ROW]
    assert not too_long, too_long
    assert len(table) == 2 + 6 + 1 + 2 + 1  # header, rule, 6 ranked models, separator, 2 references, floor row


def test_what_every_row_shares_is_stated_once_and_every_metric_is_in_the_details():
    md = render([fakes_board.board_run()], "md")
    headline, details = md.split("<details>", 1)
    assert headline.count("AMD EPYC ×2; torch 2.13, ORT 1.23") == 1  # under the table, not on every row
    assert headline.count("genbench run --all --seeds 0,1,2") == 1
    assert "| environment |" not in md and "| reproduce |" not in md
    for metric in fakes_board.METRICS:  # every metric, with its interval and floor, in the details
        assert re.search(rf"\| {re.escape(metric)}( \(.*?\))? [↓↑→]", details), metric
    assert "\\[17.9, 21.9\\] · floor 2.413" in details  # ar-pixel's fd: 95% interval and floor
    assert "**Memorisation**" in details and "**Sample quality (1 of 2)**" in details
    # the copying reference row is marked in the headline and named in a note under it
    assert "`baseline-train-copy` (replayed training data) **⚠**" in headline
    assert "- ⚠ baseline-train-copy: copy-ct: copies training data" in headline


def test_columns_chooses_the_headline_metrics_and_refuses_unknown_ones(tmp_path):
    d = fakes_board.write_board_run(tmp_path)
    r = CliRunner().invoke(cli, ["leaderboard", str(d), "--columns", "kid,coverage"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    (table,) = tables_outside_details(r.stdout)
    assert cells(table[0])[3:5] == ["kid ↓", "coverage ↑"] and len(cells(table[0])) == 7
    bad = CliRunner().invoke(cli, ["leaderboard", str(d), "--columns", "fd,fidd"])
    assert bad.exit_code == 1 and len(bad.stderr.strip().splitlines()) == 1
    assert "'fidd'" in bad.stderr and "choose from fd, kid" in bad.stderr
    csv = CliRunner().invoke(cli, ["leaderboard", str(d), "--columns", "fd", "--format", "csv"])
    assert csv.exit_code == 1 and "--columns" in csv.stderr and len(csv.stderr.strip().splitlines()) == 1
    empty = CliRunner().invoke(cli, ["leaderboard", str(d), "--columns", " , "])
    assert empty.exit_code == 1 and "--columns is empty" in empty.stderr
    # an outside tester: 7 metrics made an 11-column headline of 258-character rows; fd,fd showed fd twice
    for given, words in (("fd,kid,precision,recall", "names 4 metrics; a headline table holds at most 3"),
                         ("fd,fd", "names a metric twice"), ("fd,,kid", "has an empty name")):
        r = CliRunner().invoke(cli, ["leaderboard", str(d), "--columns", given])
        assert r.exit_code == 1 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
