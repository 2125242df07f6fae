"""The leaderboard's page, in two renderings: README.md and one self-contained index.html. It leads
with cross-validation (Kendall tau and its interval), then what helps, the zero-cost proxies, the
extrapolation protocols and, last, the reproduction of the paper's table."""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass

from naap.board import findings
from naap.escape import code_span, datum, html_line, markdown_line
from naap.board.figures import figure_predicted_vs_true, figure_rank_matrix, figure_tau_vs_budget, png
from naap.board.result_tables import (
    Table,
    baseline_table,
    cv_tables,
    fixed_split_table,
    html_table,
    markdown_table,
    paper_table,
    predictor_table,
)

ABOUT = """A budget of k epochs means a predictor sees the architecture and epochs 1..k of its training
only; the target is MaxAccuracy over all recorded epochs, and a budget must stay below them. What a
predictor is handed carries nothing else: the index is reset and the test rows are shuffled. The
headline is cross-validation: repeated k-fold over every architecture with test folds of about 40,
Kendall tau-b with a 95 % interval. Violations count the test pairs ordered the wrong way round, a
tied pair as half (a constant predictor scores half the pairs, chance); the paper's count, which does
not count ties, is kept beside it. A predictor whose predictions take at most 10 % of the test
items' count of distinct values (or barely vary) is flagged near-constant and never counts as the best.
The extrapolation protocols train on the 90 % smallest (by NumMACs) or least accurate architectures
and test on the rest. See docs/leaderboard.md for every feature set, predictor and metric."""


COMPUTED_WITH_NOTE = ("on another CPU or with other versions the last digits of some fits may move; "
                      "the headline names every predictor that cannot be told from the best: docs/exactness.md")


STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{padding:3px 8px;border-bottom:1px solid #ddd}
td{text-align:right}td:first-child{text-align:left}th{cursor:pointer;background:#f3f3f3;position:sticky;top:0}
th[data-dir=asc]::after{content:" ▲"}th[data-dir=desc]::after{content:" ▼"}td.best{font-weight:bold;background:#e6f4e6}
tr.flagged td{color:#999}img{max-width:100%;display:block;margin:1em 0}code{background:#f3f3f3;padding:1px 4px}"""


SORT_SCRIPT = """document.querySelectorAll("table.sortable").forEach(table => table.querySelectorAll("th").forEach(
  (th, col) => th.addEventListener("click", () => {
  const dir = th.dataset.dir === "asc" ? "desc" : "asc";
  table.querySelectorAll("th").forEach(h => delete h.dataset.dir); th.dataset.dir = dir;
  const key = row => { const v = row.cells[col].dataset.value; return v === "" || isNaN(v) ? v : parseFloat(v); };
  const rows = [...table.tBodies[0].rows].sort((a, b) => {
    const x = key(a), y = key(b), c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(y);
    return dir === "asc" ? c : -c; });
  table.tBodies[0].append(...rows);
})));"""


@dataclass
class Page:
    """Everything the page says, in order: headline lines, then sections of lines, then tables and figures."""
    command: str
    computed_with: str  # naap.board.environment.describe: the CPU, the libraries and the BLAS
    headline: list[str]
    sections: list[tuple[str, list[str]]]
    tables: list[Table]
    figures: dict  # file name: (title, PNG bytes)


def readme_text(page: Page) -> str:
    readme = ["# naap leaderboard", "", f"Produced by {code_span(page.command)}.", "",
              f"Computed with {markdown_line(page.computed_with)} ({COMPUTED_WITH_NOTE}).", "",
              "## Headline: cross-validated Kendall τ (95 % interval)", "",
              *[f"- {markdown_line(line)}" for line in page.headline], ""]
    for title, lines in page.sections:
        readme += [f"## {title}", "", *[f"- {markdown_line(line)}" for line in lines], ""]
    readme += ["## How to read it", "", ABOUT, ""]
    for table in page.tables:
        readme += [f"## {table.title}", "", markdown_line(table.note), "", markdown_table(table), ""]
    readme += ["## Figures", ""] + [f"![{title}]({name})\n" for name, (title, _) in page.figures.items()]
    readme += ["Tables: `results.parquet` (one row per fit), `summary.parquet` / `summary.csv`, "
               "`predictions.parquet`; the same tables, sortable, in `index.html`.", ""]
    return "\n".join(readme)


def html_page(page: Page) -> str:
    """One self-contained page: the figures are inlined as base64 PNG."""
    images = "".join(f'<h2>{html.escape(title)}</h2><img alt="{html.escape(title)}" '
                     f'src="data:image/png;base64,{base64.b64encode(data).decode()}">\n'
                     for title, data in page.figures.values())
    sections = "".join(f"<h2>{html.escape(title)}</h2>\n<ul>" + "".join(f"<li>{html_line(line)}</li>" for line in lines)
                       + "</ul>\n" for title, lines in page.sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>naap leaderboard</title>'
            f"<style>{STYLE}</style></head><body>\n<h1>naap leaderboard</h1>\n"
            f"<p>Produced by <code>{html.escape(page.command)}</code>. Click a column header to sort.</p>\n"
            f"<p>Computed with {html_line(page.computed_with)} ({html.escape(COMPUTED_WITH_NOTE)}).</p>\n"
            "<h2>Headline: cross-validated Kendall τ (95 % interval)</h2>\n<ul>"
            + "".join(f"<li>{html_line(line)}</li>" for line in page.headline) + "</ul>\n" + sections
            + f"<h2>How to read it</h2>\n<p>{html.escape(ABOUT)}</p>\n"
            + "\n".join(html_table(t) for t in page.tables) + "\n" + images
            + f"<script>{SORT_SCRIPT}</script></body></html>\n")


def build_page(results, predictions, summary, predictors, command: str, computed_with: str, notices: list[str],
               ceiling_line: str, proxies: dict | None, recorded: int) -> Page:
    order = [p.name for p in predictors]
    protocols = set(summary["protocol"])
    headline = findings.headline(summary)
    matters = findings.what_matters(results, summary, recorded)
    if matters:
        headline.append(matters)
    headline += findings.fixed_split_lines(summary)
    headline.append(ceiling_line)
    flagged = summary[summary["near_constant"]]
    if len(flagged):
        cells = [f"{datum(name)} ({'; '.join(f'{p} at {b}' for p, b in zip(rows['protocol'], rows['budget']))})"
                 for name, rows in flagged.groupby("predictor")]
        notices = notices + ["Near-constant predictions (flagged there, never the best of a column): "
                             + ", ".join(cells) + "."]
    sections = [(title, lines) for title, lines in (("Notices", notices),
                                                    ("What helps", findings.what_helps(results, summary))) if lines]
    tables = cv_tables(summary, results)
    baselines = baseline_table(summary, proxies)
    if baselines is not None:
        tables.append(baselines)
    extrapolation_notes = {
        "extrapolation-size": "Trained on the 90 % smallest architectures by NumMACs, tested on the largest 10 %",
        "extrapolation-accuracy": "Trained on the 90 % least accurate architectures, tested on the top 10 %"}
    for protocol, what in extrapolation_notes.items():
        if protocol in protocols:
            tables.append(fixed_split_table(
                summary, protocol, f"Extrapolation: {protocol}",
                f"{what} (ties broken by ModelId); five seeds, the median seed by violations (ties as half) "
                "reported; τ and violations are within the test set. Best per column in bold.", order))
    if "paper" in protocols:
        tables.append(paper_table(summary, results, order))
    tables.append(predictor_table(predictors))
    figures = {}
    if "paper" in protocols:
        figures["predicted_vs_true.png"] = ("Predicted vs true accuracy of the best predictors (paper split)",
                                            png(figure_predicted_vs_true(summary, predictions)))
    figures["kendall_tau_vs_budget.png"] = ("Kendall τ against budget, per predictor family",
                                            png(figure_tau_vs_budget(summary)))
    if "paper" in protocols:
        figures["rank_matrix.png"] = ("The paper split's rank matrix", png(figure_rank_matrix(summary, predictions)))
    return Page(command, computed_with, headline, sections, tables, figures)
