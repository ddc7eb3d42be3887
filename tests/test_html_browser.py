"""The HTML leaderboard in a real headless browser (Debian's chromium, driven by Playwright), at laptop size.

Marked ``browser``: .ci/run installs chromium and playwright and runs these; ``pytest -m browser``. The board
(tests/fakes_board.py) has three families, reference rows, floors, three seeds, timings, loss histories, a
copying flag, more metric columns than fit, and a limits study. A full-page screenshot is saved under the
test's temporary directory (its path is printed; ``pytest -s`` shows it).
"""

import struct

import pytest
from fakes_board import HOSTILE, write_board_page

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDTH, HEIGHT = 1366, 900
TABLE = "table#task-digits"


def _open(browser, path):
    pg = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
    errors, dialogs = [], []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.goto(path.as_uri())
    pg.wait_for_load_state("load")
    return pg, errors, dialogs


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def board(browser, tmp_path_factory):
    root = tmp_path_factory.mktemp("html")
    _, _, path = write_board_page(root)
    pg, errors, dialogs = _open(browser, path)
    yield pg, errors, dialogs, root
    pg.close()


def _ranked(pg):
    return pg.eval_on_selector_all(f"{TABLE} tbody.ranked tr.ranked button.name", "els => els.map(e => e.textContent)")


def _references(pg):
    return pg.eval_on_selector_all(f"{TABLE} tbody.references tr:not(.ref-head):not(.detail) td.model",
                                   "els => els.map(e => (e.querySelector('button.name') || e).textContent)")


def test_the_page_loads_without_errors_and_its_main_columns_fit_a_laptop(board):
    pg, errors, dialogs, _ = board
    assert errors == [] and dialogs == []
    fit = pg.eval_on_selector("#task-digits-wrap", "w => [w.scrollWidth, w.clientWidth]")
    assert 900 < fit[0] <= fit[1], fit  # no horizontal scrolling of the main columns at 1366 px
    assert pg.evaluate("document.documentElement.scrollWidth") <= WIDTH
    visible = pg.eval_on_selector_all(f"{TABLE} thead th", "hs => hs.filter(h => h.offsetWidth > 0).length")
    hidden = pg.eval_on_selector_all(f"{TABLE} thead th.sec", "hs => hs.filter(h => h.offsetWidth === 0).length")
    assert visible >= 2 + 3 + 2 and hidden >= 1  # rank, model, at least 3 metrics, 2 speed columns; the rest folded
    assert pg.eval_on_selector(f"{TABLE} thead th", "h => getComputedStyle(h).position") == "sticky"
    assert pg.eval_on_selector(f"{TABLE} td.num", "d => getComputedStyle(d).fontVariantNumeric") == "tabular-nums"


def test_floors_and_reference_rows_are_visible_below_the_ranked_rows(board):
    pg, _, _, _ = board
    assert _references(pg) == ["baseline-train-copy", "baseline-gaussian", "real data at n (floor)"]
    last_ranked = pg.locator(f"{TABLE} tbody.ranked tr.ranked").last.bounding_box()
    head = pg.locator(f"{TABLE} tr.ref-head")
    floor = pg.locator(f"{TABLE} tr.floor")
    assert head.is_visible() and floor.is_visible() and head.text_content().strip() == "references, not ranked"
    assert floor.bounding_box()["y"] > head.bounding_box()["y"] > last_ranked["y"]
    assert "2.413" in floor.inner_text()
    ref_bg = pg.eval_on_selector(f"{TABLE} tr.ref td", "d => getComputedStyle(d).backgroundColor")
    ranked_bg = pg.eval_on_selector(f"{TABLE} tr.ranked td", "d => getComputedStyle(d).backgroundColor")
    assert ref_bg != ranked_bg  # visibly apart
    flag = pg.locator(f"{TABLE} span.flag")
    assert flag.count() == 1 and flag.is_visible() and flag.inner_text() == "⚑ copy-ct"
    assert pg.locator(f"{TABLE} td.rank").first.inner_text() == "1" and "2–3" in _rank_texts(pg)


def _rank_texts(pg):
    return pg.eval_on_selector_all(f"{TABLE} tbody.ranked td.rank", "els => els.map(e => e.textContent)")


def test_plots_are_sized_svgs_inside_the_page(board):
    pg, _, _, _ = board
    names = pg.eval_on_selector_all("figure[data-plot]", "fs => fs.map(f => f.dataset.plot)")
    assert set(names) == {"pareto", "cost-vs-batch", "loss-ar", "loss-gan", "loss-vae", "limits-quantity",
                          "limits-quality", "limits-compute"}
    boxes = pg.eval_on_selector_all("figure[data-plot] svg.plot",
                                    "ss => ss.map(s => {const r = s.getBoundingClientRect(); "
                                    "return [r.width, r.height, r.right]})")
    assert len(boxes) == len(names)
    for w, h, right in boxes:
        assert 300 <= w <= 620 and 150 <= h <= 500 and right <= WIDTH, (w, h, right)
    assert pg.locator("img[src^='data:image/png']").count() == 8  # the sample grids; no plot is a PNG


def test_sorting_reorders_the_ranked_rows_and_leaves_references_in_place(board):
    pg, errors, _, _ = board
    before = _ranked(pg)
    assert before[0] == "ar-pixel"  # ranked by fd, lower first
    fd = f"{TABLE} thead th:nth-child(3) button"
    pg.click(fd)
    assert _ranked(pg) == before  # ascending: the rank order
    pg.click(fd)
    assert _ranked(pg) == list(reversed(before)) and _ranked(pg)[0] == "example-gan"
    assert pg.get_attribute(f"{TABLE} thead th:nth-child(3)", "aria-sort") == "descending"
    pg.click(f"{TABLE} thead th:nth-child(2) button")  # by model name
    assert _ranked(pg) == sorted(before)
    assert _references(pg) == ["baseline-train-copy", "baseline-gaussian", "real data at n (floor)"]
    pg.click(f"{TABLE} thead th:nth-child(1) button")  # back to rank order
    assert _ranked(pg) == before and errors == []


def test_a_model_opens_its_details_and_hidden_columns_open_on_request(board):
    pg, errors, _, _ = board
    detail = pg.locator(f"{TABLE} tr.ranked:has(button.name:text-is('gan-mlp')) + tr.detail")
    assert not detail.is_visible()
    pg.click(f"{TABLE} button.name:text-is('gan-mlp')")
    assert detail.is_visible() and "genbench run --all --seeds 0,1,2" in detail.inner_text()
    pg.click(f"{TABLE} thead th:nth-child(3) button")  # a detail row travels with its model when sorting
    assert pg.locator(f"{TABLE} tr.ranked:has(button.name:text-is('gan-mlp')) + tr.detail").is_visible()
    pg.click(f"{TABLE} button.name:text-is('gan-mlp')")
    assert not detail.is_visible()
    hidden = pg.locator(f"{TABLE} thead th.sec").first
    assert not hidden.is_visible()
    button = pg.locator("button.show-all[aria-controls='task-digits-wrap']")
    button.click()
    assert hidden.is_visible() and button.inner_text() == "Show fewer columns"
    button.click()
    assert not hidden.is_visible() and errors == []


def test_text_from_results_files_stays_text(board):
    pg, errors, dialogs, _ = board
    assert pg.evaluate("document.scripts.length") == 1  # only the page's own script
    assert HOSTILE in pg.locator("section.limits").inner_text()
    assert dialogs == [] and errors == []


def test_a_full_page_screenshot_at_laptop_size(board):
    pg, _, _, root = board
    pg.reload()  # as a reader first sees it: no sorting, nothing opened
    pg.wait_for_load_state("load")
    path = root / "leaderboard-1366.png"
    pg.screenshot(path=str(path), full_page=True)
    data = path.read_bytes()
    width, height = struct.unpack(">II", data[16:24])
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and width == WIDTH and height > 2 * HEIGHT
    assert len(data) > 100_000  # a page of tables and plots, not a blank one
    print(f"screenshot: {path}")


@pytest.fixture(scope="module")
def two_profiles(browser, tmp_path_factory):
    """Two profiles merged (two tables), floors and reference rows, in a second tab of the same browser."""
    from genbench.comparability import make_key
    from genbench.reports.html import render
    from genbench.types import JobResult, MetricValue, RunResult

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
    pg, errors, _ = _open(browser, path)
    yield pg, errors
    pg.close()


def test_two_profiles_make_two_tables_each_with_its_key(two_profiles):
    pg, errors = two_profiles
    assert errors == [] and pg.locator("table.sortable").count() == 2
    assert pg.locator("h3").all_text_contents() == ["profile default", "profile smoke"]
    keys = pg.locator("p.key:not(.smoke)").all_inner_texts()
    assert [k.split("profile ")[1].split(",")[0] for k in keys] == ["default", "smoke"]
    # the smoke table, and only it, says above its key that it is a pipeline check, not a result
    assert [t.lower() for t in pg.locator("p.key.smoke").all_inner_texts()] == [
        "smoke profile: a check that the pipeline runs, not a result"]
    assert _ranked(pg) == ["vae-mlp", "gan-mlp"]
    assert _references(pg) == ["baseline-train-copy", "real data at n (floor)"]
    assert pg.locator(f"{TABLE} tbody.ranked tr.ranked td.num").first.inner_text() == "20.00"
    assert pg.locator(f"{TABLE} tr.floor td.num").first.inner_text() == "2.500"
