"""The leaderboard's outputs: Parquet and CSV tables, README.md, one self-contained index.html and
PNG figures (matplotlib, Agg backend).

    results.parquet       one row per protocol, predictor, budget and seed (fixed splits) or fold
                          (cv); fit_seconds is the wall time of the fit behind the row (rows read
                          off one fit, such as the sizes of one forest, share it)
    predictions.parquet   the fixed-split protocols' test predictions (behind their rows of results)
    summary.parquet/.csv  one row per protocol, predictor and budget (see protocols.summarise)

The page leads with cross-validation (Kendall tau and its interval), then what helps, the
zero-cost proxies, the extrapolation protocols and, last, the reproduction of the paper's table.
A predictor flagged near-constant is marked and never shown as the best of a column.
"""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402

from naap import findings  # noqa: E402
from naap.metrics import max_violations  # noqa: E402
from naap.protocols import EXTRAPOLATION, METRICS, by_tau  # noqa: E402
from naap.tables import atomic_write, write_parquet  # noqa: E402

_KEYS = [pa.field("protocol", pa.string(), nullable=False), pa.field("predictor", pa.string(), nullable=False)]
RESULTS_SCHEMA = pa.schema(_KEYS + [
    pa.field("family", pa.string(), nullable=False),
    pa.field("features", pa.string(), nullable=False),
    pa.field("budget", pa.int16(), nullable=False),
    pa.field("seed", pa.int64(), nullable=False),
    pa.field("fold", pa.int32(), nullable=True),
    pa.field("mae", pa.float64(), nullable=False),
    pa.field("violations", pa.float64(), nullable=False),
    pa.field("violations_strict", pa.int32(), nullable=False),
    pa.field("max_violations", pa.int32(), nullable=False),
    pa.field("monotonicity", pa.float64(), nullable=False),
    pa.field("kendall_tau", pa.float64(), nullable=False),
    pa.field("spearman", pa.float64(), nullable=False),
    pa.field("distinct_predictions", pa.int32(), nullable=False),
    pa.field("near_constant", pa.bool_(), nullable=False),
    pa.field("train_items", pa.int32(), nullable=False),
    pa.field("test_items", pa.int32(), nullable=False),
    pa.field("fit_seconds", pa.float64(), nullable=False),
])
PREDICTIONS_SCHEMA = pa.schema(_KEYS + [
    pa.field("budget", pa.int16(), nullable=False),
    pa.field("seed", pa.int64(), nullable=False),
    pa.field("fold", pa.int32(), nullable=True),
    pa.field("arch_id", pa.int32(), nullable=False),
    pa.field("true", pa.float64(), nullable=False),
    pa.field("predicted", pa.float64(), nullable=False),
])
_INTERVALS = [pa.field(f"{m}_{end}", pa.float64(), nullable=True)
              for m in METRICS for end in ("low", "high")]
SUMMARY_SCHEMA = pa.schema(_KEYS + [
    pa.field("family", pa.string(), nullable=False),
    pa.field("features", pa.string(), nullable=False),
    pa.field("budget", pa.int16(), nullable=False),
    pa.field("runs", pa.int32(), nullable=False),
    pa.field("seed", pa.int64(), nullable=True),
    pa.field("near_constant", pa.bool_(), nullable=False),
] + [pa.field(m, pa.float64(), nullable=False) for m in METRICS] + _INTERVALS
    + [pa.field("p_vs_best", pa.float64(), nullable=True)])
MARKER = ".naap-leaderboard"  # written into every folder `naap leaderboard` writes
NEAR_CONSTANT_NOTE = "near-constant predictions"


@dataclass
class Column:
    header: str
    values: list
    text: list[str]
    best: str | None = None  # "min" or "max": the best value is marked

    def is_best(self, i: int, eligible: list[bool]) -> bool:
        finite = [v for v, ok in zip(self.values, eligible) if ok and isinstance(v, (int, float)) and np.isfinite(v)]
        if self.best is None or not finite or not eligible[i]:
            return False
        return self.values[i] == (min(finite) if self.best == "min" else max(finite))


@dataclass
class Table:
    title: str
    note: str
    columns: list[Column]
    flagged: list[bool] = field(default_factory=list)  # rows that can never be the best

    def eligible(self) -> list[bool]:
        return [not f for f in self.flagged] if self.flagged else [True] * len(self.columns[0].values)


def _column(header, values, fmt, best=None) -> Column:
    values = [None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in values]
    return Column(header, values, ["–" if v is None else fmt(v) for v in values], best)


def _interval_column(header, frame, metric, fmt, best) -> Column:
    """The mean, its 95 % interval in the text: `mean [low, high]`."""
    column = _column(header, frame[metric].tolist(), fmt, best)
    column.text = ["–" if m is None else f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]" for m, lo, hi in
                   zip(column.values, frame[f"{metric}_low"], frame[f"{metric}_high"])]
    return column


def _notes(flags) -> Column:
    notes = [NEAR_CONSTANT_NOTE if flag else "" for flag in flags]
    return Column("Note", notes, notes)


def _sizes(results: pd.DataFrame, protocol: str) -> tuple[str, str]:
    """The training and test rows of the protocol's fits, as text ("40", or "40-41" where folds differ)."""
    rows = results[results["protocol"] == protocol]

    def span(column: str) -> str:
        low, high = rows[column].min(), rows[column].max()
        return f"{low}" if low == high else f"{low}-{high}"

    return span("train_items"), span("test_items")


def cv_tables(summary: pd.DataFrame, results: pd.DataFrame) -> list[Table]:
    cv = summary[summary["protocol"] == "cv"]
    tables = []
    for budget in sorted(cv["budget"].unique()):
        at = by_tau(cv[cv["budget"] == budget]).sort_values("near_constant", kind="stable")
        columns = [
            Column("Predictor", at["predictor"].tolist(), at["predictor"].tolist()),
            Column("Features", at["features"].tolist(), at["features"].tolist()),
            _interval_column("Kendall τ [95 % CI]", at, "kendall_tau", "{:.3f}".format, "max"),
            _interval_column("Spearman ρ [95 % CI]", at, "spearman", "{:.3f}".format, "max"),
            _interval_column("MAE [95 % CI]", at, "mae", "{:.4f}".format, "min"),
            _interval_column("Violations, ties as ½ [95 % CI]", at, "violations", "{:.1f}".format, "min"),
            _column("Paper's count (ties not counted)", at["violations_strict"].tolist(), "{:.1f}".format),
            _column("p vs best τ", at["p_vs_best"].tolist(), "{:.3f}".format),
            _notes(at["near_constant"]),
        ]
        note = (f"{at['runs'].iloc[0]} folds of {_sizes(results, 'cv')[1]} test items (repeated k-fold over all "
                "architectures, stratified by accuracy); mean and 95 % interval with the Nadeau-Bengio correction "
                "for overlapping training sets. p vs best τ: corrected paired t-test against the predictor with "
                "the best mean τ; p > 0.05 means the data cannot tell the two apart. Best per column in bold.")
        tables.append(Table(f"Cross-validation, {budget} epochs", note, columns, at["near_constant"].tolist()))
    return tables


def baseline_table(summary: pd.DataFrame, proxies: dict | None) -> Table | None:
    """The zero-cost proxies and the one-column baselines, each alone (they read no epoch)."""
    rows = summary[summary["family"].isin(["zero-cost proxy", "one column"])]
    if rows.empty:
        return None
    first = rows["budget"].min()
    cv = rows[(rows["protocol"] == "cv") & (rows["budget"] == first)].sort_values("kendall_tau", ascending=False)
    names = cv["predictor"].tolist() or sorted(rows["predictor"].unique())
    columns = [Column("Predictor", names, names)]
    if len(cv):
        columns += [_interval_column("cv Kendall τ [95 % CI]", cv, "kendall_tau", "{:.3f}".format, "max"),
                    _interval_column("cv violations, ties as ½", cv, "violations", "{:.1f}".format, "min")]
    for protocol in ("paper",) + EXTRAPOLATION:
        at = rows[(rows["protocol"] == protocol) & (rows["budget"] == first)].set_index("predictor").reindex(names)
        if at["kendall_tau"].notna().any():
            columns.append(_column(f"{protocol} τ", at["kendall_tau"].tolist(), "{:.3f}".format, "max"))
    source = (proxies or {}).get("data", "absent: `naap proxies DIR --data-free` writes them")
    note = ("Each alone: a linear fit of MaxAccuracy on the one column (synflow, snip and grad_norm as logarithms, "
            "NumMACs and NumParams as logarithms) on the training rows, so its sign comes from the training rows "
            f"and its ranking is the column's. They read no training epoch. Proxies computed from: {source}.")
    return Table("Zero-cost proxies and one-column baselines, alone", note, columns,
                 cv["near_constant"].tolist() if len(cv) else [])


def _per_budget(rows: pd.DataFrame, order: list[str], cells) -> tuple[list[Column], list[bool]]:
    """The predictor column, `cells(rows at a budget, budget)` for each budget, the notes; and the flags."""
    names = [n for n in order if n in set(rows["predictor"])]
    flagged = rows.groupby("predictor")["near_constant"].any().reindex(names).tolist()
    columns = [Column("Predictor", names, names)]
    for budget in sorted(rows["budget"].unique()):
        columns += cells(rows[rows["budget"] == budget].set_index("predictor").reindex(names), budget)
    return columns + [_notes(flagged)], flagged


def fixed_split_table(summary: pd.DataFrame, protocol: str, title: str, note: str, order: list[str]) -> Table:
    def cells(at, budget):
        return [_column(f"{budget} ep. τ", at["kendall_tau"].tolist(), "{:.3f}".format, "max"),
                _column(f"{budget} ep. viol.", at["violations"].tolist(), "{:g}".format, "min"),
                _column(f"{budget} ep. MAE", at["mae"].tolist(), "{:.4f}".format, "min")]

    return Table(title, note, *_per_budget(summary[summary["protocol"] == protocol], order, cells))


def paper_table(summary: pd.DataFrame, results: pd.DataFrame, order: list[str]) -> Table:
    def cells(at, budget):
        return [_column(f"{budget} ep. MAE", at["mae"].tolist(), "{:.4f}".format, "min"),
                _column(f"{budget} ep. mono.", at["monotonicity"].tolist(), "{:.3f}".format, "max"),
                _column(f"{budget} ep. viol.", at["violations"].tolist(), "{:g}".format, "min"),
                _column(f"{budget} ep. paper's count (ties not counted)", at["violations_strict"].tolist(),
                        "{:.0f}".format)]

    paper = summary[summary["protocol"] == "paper"]
    train, test = _sizes(results, "paper")
    pairs = max_violations(int(test))
    note = (f"The paper's protocol (docs/benchmark.md): the published split ({train} train, {test} test), "
            f"features standardised, {paper['runs'].iloc[0]} seeds per cell; each cell is the seed with the median "
            f"violations (of {pairs} pairs). viol.: tied predictions count as half a violation; the paper's count "
            "does not count them (the published numbers are in that count); mono. = 1 - viol. / pairs. One split "
            "of 40 cannot separate predictors closer than about 15 violations: cross-validation above is the "
            "ranking. Best per column in bold.")
    return Table("The reproduction of the paper (paper protocol)", note, *_per_budget(paper, order, cells))


def predictor_table(predictors) -> Table:
    """What each predictor reads and what it chooses, and where."""
    names = [p.name for p in predictors]
    text = [p.description or ("plug-in" if p.family == "plug-in" else "settings fixed in advance (the paper's "
                                                                        "or library defaults)") for p in predictors]
    return Table("The predictors: what each reads and what is chosen where",
                 "Every choice made from data is made on each fit's training rows only; the rest is fixed in advance.",
                 [Column("Predictor", names, names), Column("Family", [p.family for p in predictors],
                                                            [p.family for p in predictors]),
                  Column("Features", [p.features for p in predictors], [p.features for p in predictors]),
                  Column("Settings", text, text)])


# --- figures ----------------------------------------------------------------------------------

def _paper_ranking(summary) -> tuple[int, pd.DataFrame]:
    """The paper protocol's largest budget and its rows, fewest violations (then lowest MAE) first,
    predictors flagged near-constant left out."""
    paper = summary[(summary["protocol"] == "paper") & ~summary["near_constant"]]
    budget = paper["budget"].max()
    return budget, paper[paper["budget"] == budget].sort_values(["violations", "mae"])


def _reported_predictions(ranked, predictions, budget) -> pd.DataFrame:
    """The test predictions of the seed each of the paper protocol's `ranked` rows reports."""
    paper = predictions[(predictions["protocol"] == "paper") & (predictions["budget"] == budget)]
    return paper.merge(ranked[["predictor", "seed"]], on=["predictor", "seed"])


def figure_predicted_vs_true(summary, predictions, count: int = 4):
    budget, ranked = _paper_ranking(summary)
    best = ranked.drop_duplicates("family")["predictor"].head(count).tolist()  # the best of the best families
    shown = _reported_predictions(ranked, predictions, budget)
    fig, axes = plt.subplots(1, len(best), figsize=(3.2 * len(best), 3.4), squeeze=False)
    for ax, name in zip(axes[0], best):
        rows = shown[shown["predictor"] == name]
        row = ranked[ranked["predictor"] == name].iloc[0]
        low, high = rows[["true", "predicted"]].min().min(), rows[["true", "predicted"]].max().max()
        ax.plot([low, high], [low, high], color="0.6", lw=1)
        ax.scatter(rows["true"], rows["predicted"], s=14)
        ax.set_title(f"{name}\n{row['violations']:g} violations, MAE {row['mae']:.4f}", fontsize=9)
        ax.set_xlabel("true MaxAccuracy")
    axes[0][0].set_ylabel("predicted")
    fig.suptitle(f"Paper split, {budget} epochs: predicted vs true, best of the {len(best)} best families "
                 "(the reported seed)", fontsize=10)
    fig.tight_layout()
    return fig


def figure_tau_vs_budget(summary):
    """The best member of each family at each budget; cv: mean with its 95 % interval as error bars
    (families side by side around each budget). Near-constant predictors are left out."""
    protocol = "cv" if (summary["protocol"] == "cv").any() else "paper"
    frame = summary[(summary["protocol"] == protocol) & ~summary["near_constant"]]
    families = sorted(frame["family"].unique())
    budgets = sorted(frame["budget"].unique())
    step = min(np.diff(budgets)) if len(budgets) > 1 else 1
    fig, ax = plt.subplots(figsize=(8, 4.6))
    ax.set_prop_cycle(color=plt.get_cmap("tab20").colors[::2] + plt.get_cmap("tab20").colors[1::2])
    for i, family in enumerate(families):
        rows = frame[frame["family"] == family]
        best = rows.loc[rows.groupby("budget")["kendall_tau"].idxmax()].sort_values("budget")
        x = best["budget"] + step * 0.5 * (i / max(len(families) - 1, 1) - 0.5)
        errors = None
        if protocol == "cv":
            errors = [best["kendall_tau"] - best["kendall_tau_low"], best["kendall_tau_high"] - best["kendall_tau"]]
        ax.errorbar(x, best["kendall_tau"], yerr=errors, marker="o", ms=4, lw=1.2, capsize=2, label=family)
    ax.set_xlabel("budget (epochs of training seen)")
    ax.set_ylabel("Kendall τ (best of family)")
    ax.set_xticks(budgets)
    ax.set_title(f"Kendall τ against budget ({'cv mean, 95 % interval' if protocol == 'cv' else 'paper split'})",
                 fontsize=10)
    if ax.get_legend_handles_labels()[0]:  # no family has a finite tau on a tiny dataset
        ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    return fig


def figure_rank_matrix(summary, predictions, count: int = 30):
    """Rows: the `count` predictors with the fewest violations (on top); columns: the test
    architectures in true order; colour: the rank the predictor gives. A perfect predictor is a smooth ramp."""
    budget, ranked = _paper_ranking(summary)
    ranked = ranked.head(count)
    order = ranked["predictor"].tolist()
    shown = _reported_predictions(ranked, predictions, budget).sort_values(["predictor", "true", "arch_id"])
    shown["rank"] = shown.groupby("predictor")["predicted"].rank(method="average")
    matrix = np.stack([shown.loc[shown["predictor"] == name, "rank"].to_numpy() for name in order])
    fig, ax = plt.subplots(figsize=(8, 0.22 * len(order) + 1.4))
    image = ax.imshow(matrix, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(len(order)), [f"{n} ({v:g})" for n, v in zip(order, ranked["violations"])], fontsize=7)
    ax.set_xlabel("test architectures, by true MaxAccuracy (low to high)")
    ax.set_title(f"Paper split, {budget} epochs: predicted rank (violations in brackets)", fontsize=10)
    fig.colorbar(image, ax=ax, label="predicted rank")
    fig.tight_layout()
    return fig


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


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


# --- Markdown and HTML --------------------------------------------------------------------------

def markdown_table(table: Table) -> str:
    eligible = table.eligible()
    lines = ["| " + " | ".join(c.header for c in table.columns) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i, _ in enumerate(table.columns)) + "|"]
    for i in range(len(table.columns[0].values)):
        cells = [f"**{c.text[i]}**" if c.is_best(i, eligible) else c.text[i] for c in table.columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def html_table(table: Table) -> str:
    eligible = table.eligible()
    head = "".join(f"<th>{html.escape(c.header)}</th>" for c in table.columns)
    body = []
    for i in range(len(table.columns[0].values)):
        cells = []
        for c in table.columns:
            value = c.values[i]
            sort_key = "" if value is None else html.escape(str(value))
            css = ' class="best"' if c.is_best(i, eligible) else ""
            cells.append(f'<td data-value="{sort_key}"{css}>{html.escape(c.text[i])}</td>')
        body.append(f'<tr{" class=flagged" if not eligible[i] else ""}>' + "".join(cells) + "</tr>")
    return (f"<h2>{html.escape(table.title)}</h2>\n<p>{html.escape(table.note)}</p>\n"
            f'<table class="sortable"><thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(body)
            + "\n</tbody></table>")


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
    headline: list[str]
    sections: list[tuple[str, list[str]]]
    tables: list[Table]
    figures: dict  # file name: (title, PNG bytes)


def readme_text(page: Page) -> str:
    readme = ["# naap leaderboard", "", f"Produced by `{page.command}`.", "",
              "## Headline: cross-validated Kendall τ (95 % interval)", "",
              *[f"- {line}" for line in page.headline], ""]
    for title, lines in page.sections:
        readme += [f"## {title}", "", *[f"- {line}" for line in lines], ""]
    readme += ["## How to read it", "", ABOUT, ""]
    for table in page.tables:
        readme += [f"## {table.title}", "", table.note, "", markdown_table(table), ""]
    readme += ["## Figures", ""] + [f"![{title}]({name})\n" for name, (title, _) in page.figures.items()]
    readme += ["Tables: `results.parquet` (one row per fit), `summary.parquet` / `summary.csv`, "
               "`predictions.parquet`; the same tables, sortable, in `index.html`.", ""]
    return "\n".join(readme)


def _html_line(line: str) -> str:
    parts = html.escape(line).split("**")
    return "".join(f"<b>{part}</b>" if i % 2 else part for i, part in enumerate(parts))


def html_page(page: Page) -> str:
    """One self-contained page: the figures are inlined as base64 PNG."""
    images = "".join(f'<h2>{html.escape(title)}</h2><img alt="{html.escape(title)}" '
                     f'src="data:image/png;base64,{base64.b64encode(data).decode()}">\n'
                     for title, data in page.figures.values())
    sections = "".join(f"<h2>{html.escape(title)}</h2>\n<ul>" + "".join(f"<li>{_html_line(line)}</li>" for line in lines)
                       + "</ul>\n" for title, lines in page.sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>naap leaderboard</title>'
            f"<style>{STYLE}</style></head><body>\n<h1>naap leaderboard</h1>\n"
            f"<p>Produced by <code>{html.escape(page.command)}</code>. Click a column header to sort.</p>\n"
            "<h2>Headline: cross-validated Kendall τ (95 % interval)</h2>\n<ul>"
            + "".join(f"<li>{_html_line(line)}</li>" for line in page.headline) + "</ul>\n" + sections
            + f"<h2>How to read it</h2>\n<p>{html.escape(ABOUT)}</p>\n"
            + "\n".join(html_table(t) for t in page.tables) + "\n" + images
            + f"<script>{SORT_SCRIPT}</script></body></html>\n")


def build_page(results, predictions, summary, predictors, command: str, notices: list[str], ceiling_line: str,
               proxies: dict | None, recorded: int) -> Page:
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
        cells = [f"{name} ({'; '.join(f'{p} at {b}' for p, b in zip(rows['protocol'], rows['budget']))})"
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
                                            _png(figure_predicted_vs_true(summary, predictions)))
    figures["kendall_tau_vs_budget.png"] = ("Kendall τ against budget, per predictor family",
                                            _png(figure_tau_vs_budget(summary)))
    if "paper" in protocols:
        figures["rank_matrix.png"] = ("The paper split's rank matrix", _png(figure_rank_matrix(summary, predictions)))
    return Page(command, headline, sections, tables, figures)


def write_leaderboard(out: str | Path, results: pd.DataFrame, predictions: pd.DataFrame, summary: pd.DataFrame,
                      page: Page, provenance: dict) -> list[Path]:
    """Write every output into `out` (and the marker naap checks before writing there again);
    returns the paths written. Everything is rendered before the first file is written, so a
    failing figure leaves an earlier leaderboard in `out` as it was."""
    out = Path(out)
    predictions = predictions[predictions["protocol"] != "cv"]
    summary = summary.reindex(columns=SUMMARY_SCHEMA.names)
    texts = {"README.md": readme_text(page), "index.html": html_page(page)}
    write_parquet(results, out / "results.parquet", RESULTS_SCHEMA, provenance)
    write_parquet(predictions, out / "predictions.parquet", PREDICTIONS_SCHEMA, provenance)
    write_parquet(summary, out / "summary.parquet", SUMMARY_SCHEMA, provenance)
    atomic_write(out / "summary.csv", lambda tmp: summary.to_csv(tmp, index=False, float_format="%.6g"))
    for name, (_, data) in page.figures.items():
        atomic_write(out / name, lambda tmp, data=data: Path(tmp).write_bytes(data))
    for name, text in texts.items():
        atomic_write(out / name, lambda tmp, text=text: Path(tmp).write_text(text, encoding="utf-8"))
    atomic_write(out / MARKER, lambda tmp: Path(tmp).write_text("written by `naap leaderboard`; it writes again "
                                                                "only into folders holding this file\n"))
    return [out / n for n in ("results.parquet", "predictions.parquet", "summary.parquet", "summary.csv",
                              *texts, *page.figures)]
