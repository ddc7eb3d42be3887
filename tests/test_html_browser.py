"""The HTML leaderboard in a real headless browser (Debian's chromium, driven by Playwright).

Marked ``browser``: .ci/run installs chromium and playwright and runs these; ``pytest -m browser``.
"""


import pytest

from genbench.reports.html import render
from genbench.types import JobResult, MetricValue, PerfRecord, RunResult

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _run():
    jobs = []
    for model, fd, tput in (("gan-mlp", 40.0, 1e6), ("vae-mlp", 20.0, 3e5), ("<script>alert('x')</script>", 30.0, 5e5)):
        perf = tuple(PerfRecord(rt, "CPU", "cpu", b, 2, 2000, 1.0, {"p50": 0.1 * b ** 0.5, "p99": 0.2}, tput / (1 + (rt != "onnxruntime")), True)
                     for rt in ("onnxruntime", "torch-eager") for b in (1, 64))
        jobs.append(JobResult(model=model, family="gan", plugin="p", plugin_version="1", task="digits", device="cpu",
                              status="ok", quality={"fd": MetricValue(fd, "", False, n=10)}, performance=perf,
                              train={"loss_history": {"g": [3.0, 2.0, 1.5]}, "log_every": 10}))
    return RunResult(schema="genbench.run/1", run_id="r1", genbench_version="0.1.0", started_at="2026", finished_at="2026",
                     command="genbench run --all", config={}, environment={"cpu": "x", "cpu_count": 2}, jobs=tuple(jobs))


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    path = tmp_path_factory.mktemp("html") / "board.html"
    path.write_text(render([_run()]), encoding="utf-8")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        pg = browser.new_page()
        errors = []
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: errors.append(str(e)))
        dialogs = []
        pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        pg.goto(path.as_uri())
        pg.wait_for_load_state("load")
        yield pg, errors, dialogs
        browser.close()


def _models(pg):
    return pg.eval_on_selector_all("table#task-digits tbody td.model", "els => els.map(e => e.textContent)")


def test_page_loads_without_console_errors_and_shows_plots(page):
    pg, errors, _ = page
    assert errors == []
    assert pg.locator("img[alt^='quality against throughput']").count() == 1
    assert pg.locator("img[alt='training loss curves']").count() == 1


def test_sorting_a_column_reorders_the_rows(page):
    pg, _, _ = page
    assert _models(pg)[0] == "vae-mlp"  # ranked by fd, lower first
    pg.click("table#task-digits th:nth-child(5)")  # fd, ascending
    first = _models(pg)
    pg.click("table#task-digits th:nth-child(5)")  # fd, descending
    assert _models(pg) == list(reversed(first)) and _models(pg)[0] == "gan-mlp"


def test_a_plugin_name_with_script_shows_as_text(page):
    pg, errors, dialogs = page
    assert "<script>alert('x')</script>" in _models(pg)
    assert dialogs == [] and errors == []
    assert pg.evaluate("document.scripts.length") == 1  # only genbench's own sorting script


@pytest.fixture(scope="module")
def references_page(page, tmp_path_factory):
    """Two profiles merged (two tables), floors, and reference rows, in a second tab of the same browser."""
    from genbench.comparability import make_key

    def run(run_id, profile, fds):
        jobs = tuple(JobResult(model=m, family="baseline" if m.startswith("baseline") else "gan", plugin="p",
                               plugin_version="1", task="digits", device="cpu", status="ok",
                               quality={"fd": MetricValue(v, "", False, n=100, floor=2.5, key=make_key(
                                   task="digits", data="d", extractor="e", n=100, params=None, profile=profile,
                                   seeds=1))})
                     for m, v in fds.items())
        return RunResult(schema="genbench.run/2", run_id=run_id, genbench_version="0.1.0", started_at=run_id,
                         finished_at=run_id, command="genbench run --all", config={}, environment={}, jobs=jobs)

    runs = [run("1", "default", {"gan-mlp": 40.0, "vae-mlp": 20.0, "baseline-train-copy": 4.0}),
            run("2", "smoke", {"gan-mlp": 900.0})]
    path = tmp_path_factory.mktemp("html") / "board.html"
    path.write_text(render(runs), encoding="utf-8")
    pg = page[0].context.browser.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(path.as_uri())
    pg.wait_for_load_state("load")
    yield pg, errors
    pg.close()


def test_floors_and_reference_rows_show_apart_and_stay_apart_when_sorting(references_page):
    pg, errors = references_page
    assert errors == [] and pg.locator("table.sortable").count() == 2  # default and smoke: two tables
    assert pg.locator("h3").all_text_contents() == ["profile default", "profile smoke"]
    table = "table#task-digits"
    ranked = pg.eval_on_selector_all(f"{table} tbody:not(.references) td.model", "els => els.map(e => e.textContent)")
    assert ranked == ["vae-mlp", "gan-mlp"]
    refs = pg.eval_on_selector_all(f"{table} tbody.references td.model", "els => els.map(e => e.textContent)")
    assert refs == ["baseline-train-copy (replayed training data)", "real data at n (floor)"]
    assert pg.locator(f"{table} tbody.references tr.ref-head").inner_text().strip() == "references, not ranked"
    assert "20 · floor 2.5" in pg.locator(f"{table} tbody:not(.references) tr").first.inner_text()
    pg.click(f"{table} th:nth-child(5)")
    pg.click(f"{table} th:nth-child(5)")  # fd, descending: the references stay below, unranked
    after = pg.eval_on_selector_all(f"{table} tbody td.model", "els => els.map(e => e.textContent)")
    assert after == ["gan-mlp", "vae-mlp", "baseline-train-copy (replayed training data)", "real data at n (floor)"]
