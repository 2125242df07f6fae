"""The published outputs of a reduced leaderboard run, and index.html in a real headless Chromium."""
import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from naap import cli
from naap.board import report
from tests.conftest import REPO

DATA = REPO / "data" / "naap440"
CHROMIUM = Path("/usr/bin/chromium")
PREDICTORS = ["1-NN", "Linear Regression", "Random Forest (N=25)", "Gradient Boosting (N=25)"]


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("leaderboard")
    argv = ["leaderboard", str(DATA), "--out", str(out), "--budgets", "0,3", "--cv-repeats", "1",
            "--predictor-set", "none", "--jobs", "2", "--quiet"]
    assert cli.main(argv + [arg for name in PREDICTORS for arg in ("--predictor", name)]) == 0
    return out


def test_results_table_has_one_row_per_protocol_predictor_budget_and_seed_or_fold(board):
    assert pq.read_schema(board / "results.parquet").remove_metadata().equals(report.RESULTS_SCHEMA)
    results = pd.read_parquet(board / "results.parquet")
    counts = results.groupby("protocol").size()
    assert counts["paper"] == len(PREDICTORS) * 2 * 5 and counts["cv"] == len(PREDICTORS) * 2 * 11
    assert counts["extrapolation-size"] == counts["extrapolation-accuracy"] == len(PREDICTORS) * 2 * 5
    assert not results.duplicated(["protocol", "predictor", "budget", "seed", "fold"]).any()
    paper = results[results["protocol"] == "paper"]
    assert (paper["max_violations"] == 780).all() and (results["fit_seconds"] > 0).all()
    assert paper["fold"].isna().all() and (results["violations"] % 0.5 == 0).all()


def test_summary_parquet_and_csv_agree(board):
    summary = pd.read_parquet(board / "summary.parquet")
    csv = pd.read_csv(board / "summary.csv")
    assert len(summary) == len(csv) == len(PREDICTORS) * 2 * 4
    pd.testing.assert_series_equal(summary["violations"], csv["violations"], check_exact=False, rtol=1e-5)


def section(readme: str, title: str) -> list[str]:
    """The table rows under the heading `## title`."""
    lines = readme.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0].splitlines()
    return [line for line in lines if line.startswith("| ") and not line.startswith("| Predictor |")]


def test_readme_leads_with_cv_and_marks_the_best_of_each_column(board):
    readme = (board / "README.md").read_text()
    assert "`naap leaderboard" in readme and "--budgets 0,3" in readme
    headings = [line for line in readme.splitlines() if line.startswith("## ")]
    assert headings[0] == "## Headline: cross-validated Kendall τ (95 % interval)"
    assert headings.index("## Cross-validation, 0 epochs") < headings.index(
        "## The reproduction of the paper (paper protocol)")
    summary = pd.read_parquet(board / "summary.parquet")
    paper = summary[(summary["protocol"] == "paper") & (summary["budget"] == 3)]
    best_violations = paper["violations"].min()
    winners = set(paper.loc[paper["violations"] == best_violations, "predictor"])
    marked = {line.split(" | ")[0][2:] for line in section(readme, "The reproduction of the paper (paper protocol)")
              if f"**{best_violations:g}** |" in line}
    assert marked == winners
    cv = summary[(summary["protocol"] == "cv") & (summary["budget"] == 3)]
    top = cv.loc[cv["kendall_tau"].idxmax()]
    assert f"3 epochs: **{top['predictor']}**, Kendall τ {top['kendall_tau']:.3f} [{top['kendall_tau_low']:.3f}, " \
           f"{top['kendall_tau_high']:.3f}]" in readme
    assert "Noise ceiling: not estimable" in readme and "## What helps" in readme and "![" in readme
    assert "paper's count (ties not counted)" in readme


def test_page_is_self_contained(board):
    page = (board / "index.html").read_text()
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert page.count('src="data:image/png;base64,') == 3
    for name in ("predicted_vs_true.png", "kendall_tau_vs_budget.png", "rank_matrix.png"):
        assert (board / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_constant_predictor_scores_chance_is_flagged_and_the_report_is_still_written(tmp_path):
    """Constant predictions have no rank correlation: scored 0 (chance), flagged, left out of the tau figure."""
    out = tmp_path / "lb"
    assert cli.main(["leaderboard", str(DATA), "--out", str(out), "--protocol", "cv", "--budgets", "0",
                     "--cv-repeats", "1", "--predictor-set", "none", "--predictor", "1-NN",
                     "--predictor", "sklearn.dummy:DummyRegressor", "--jobs", "2", "--quiet"]) == 0
    readme = (out / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| sklearn.dummy:DummyRegressor |"))
    assert row.split(" | ")[2:4] == ["0.000 [0.000, 0.000]"] * 2  # Kendall tau, Spearman rho
    assert "**" not in row and row.endswith("near-constant predictions |")
    assert (out / "kendall_tau_vs_budget.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def page(board):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (make system-deps installs Debian's chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    profile = tempfile.mkdtemp(prefix="naap-chromium-")
    with playwright.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            tab = context.new_page()
            tab.goto((board / "index.html").as_uri())
            yield tab
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def column(table, index):
    return table.locator(f"tbody tr td:nth-child({index + 1})").evaluate_all("cells => cells.map(c => c.dataset.value)")


def test_page_renders_and_sorts_in_chromium(page):
    assert page.title() == "naap leaderboard"
    # one cv table per budget, two extrapolation tables, the paper's, the predictors'
    assert page.locator("table.sortable").count() == 6
    assert page.locator("img").evaluate_all("images => images.every(i => i.complete && i.naturalWidth > 0)")
    paper = page.locator("h2", has_text="The reproduction of the paper").locator("xpath=following::table[1]")
    headers = paper.locator("th").all_inner_texts()
    violations = headers.index("3 ep. viol.")
    before = column(paper, 0)
    paper.locator("th", has_text="3 ep. viol.").click()
    ascending = [float(v) for v in column(paper, violations)]
    assert ascending == sorted(ascending)
    paper.locator("th", has_text="3 ep. viol.").click()
    assert [float(v) for v in column(paper, violations)] == sorted(ascending, reverse=True)
    paper.locator("th", has_text="Predictor").click()
    assert column(paper, 0) == sorted(before)
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    page.screenshot(path=str(artifacts / "leaderboard.png"), full_page=True)
    assert (artifacts / "leaderboard.png").stat().st_size > 10_000
