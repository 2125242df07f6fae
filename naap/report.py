"""The leaderboard's outputs: Parquet and CSV tables, README.md, one self-contained index.html and
PNG figures (matplotlib, Agg backend).

    results.parquet       one row per protocol, predictor, budget and seed (paper) or fold (cv);
                          fit_seconds is the wall time of the fit behind the row (rows read off
                          one fit, such as the sizes of one forest, share it)
    predictions.parquet   the paper protocol's test predictions (behind its rows of results.parquet)
    summary.parquet/.csv  one row per protocol, predictor and budget (see protocols.summarise)
"""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402

from naap.metrics import max_violations  # noqa: E402
from naap.protocols import METRICS  # noqa: E402
from naap.tables import atomic_write, write_parquet  # noqa: E402

_KEYS = [pa.field("protocol", pa.string(), nullable=False), pa.field("predictor", pa.string(), nullable=False)]
RESULTS_SCHEMA = pa.schema(_KEYS + [
    pa.field("family", pa.string(), nullable=False),
    pa.field("features", pa.string(), nullable=False),
    pa.field("budget", pa.int16(), nullable=False),
    pa.field("seed", pa.int64(), nullable=False),
    pa.field("fold", pa.int32(), nullable=True),
    pa.field("mae", pa.float64(), nullable=False),
    pa.field("violations", pa.int32(), nullable=False),
    pa.field("max_violations", pa.int32(), nullable=False),
    pa.field("monotonicity", pa.float64(), nullable=False),
    pa.field("kendall_tau", pa.float64(), nullable=True),
    pa.field("spearman", pa.float64(), nullable=True),
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
    pa.field("mae", pa.float64(), nullable=False),
    pa.field("violations", pa.float64(), nullable=False),
    pa.field("monotonicity", pa.float64(), nullable=False),
    pa.field("kendall_tau", pa.float64(), nullable=True),
    pa.field("spearman", pa.float64(), nullable=True),
] + _INTERVALS + [pa.field("p_vs_best", pa.float64(), nullable=True)])


@dataclass
class Column:
    header: str
    values: list
    text: list[str]
    best: str | None = None  # "min" or "max": the best value is marked

    def is_best(self, i: int) -> bool:
        finite = [v for v in self.values if isinstance(v, (int, float)) and np.isfinite(v)]
        if self.best is None or not finite:
            return False
        return self.values[i] == (min(finite) if self.best == "min" else max(finite))


@dataclass
class Table:
    title: str
    note: str
    columns: list[Column]


def _column(header, values, fmt, best=None) -> Column:
    values = [None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in values]
    return Column(header, values, ["–" if v is None else fmt(v) for v in values], best)


def _interval_column(header, frame, metric, fmt, best) -> Column:
    """The mean, its 95 % interval in the text: `mean [low, high]`."""
    column = _column(header, frame[metric].tolist(), fmt, best)
    column.text = ["–" if m is None else f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]" for m, lo, hi in
                   zip(column.values, frame[f"{metric}_low"], frame[f"{metric}_high"])]
    return column


def _sizes(results: pd.DataFrame, protocol: str) -> tuple[str, str]:
    """The training and test rows of the protocol's fits, as text ("40", or "40-41" where folds differ)."""
    rows = results[results["protocol"] == protocol]

    def span(column: str) -> str:
        low, high = rows[column].min(), rows[column].max()
        return f"{low}" if low == high else f"{low}-{high}"

    return span("train_items"), span("test_items")


def paper_table(summary: pd.DataFrame, results: pd.DataFrame, order: list[str]) -> Table:
    paper = summary[summary["protocol"] == "paper"]
    budgets = sorted(paper["budget"].unique())
    present = set(paper["predictor"])
    names = [n for n in order if n in present]
    columns = [Column("Predictor", names, names)]
    for budget in budgets:
        at = paper[paper["budget"] == budget].set_index("predictor").reindex(names)
        columns += [_column(f"{budget} ep. MAE", at["mae"].tolist(), "{:.4f}".format, "min"),
                    _column(f"{budget} ep. mono.", at["monotonicity"].tolist(), "{:.3f}".format, "max"),
                    _column(f"{budget} ep. viol.", at["violations"].astype(int).tolist(), "{:d}".format, "min")]
    train, test = _sizes(results, "paper")
    pairs = max_violations(int(test))
    note = (f"Published split ({train} train, {test} test), features standardised, {paper['runs'].iloc[0]} seeds "
            f"per cell; each cell is the seed with the median violations (of {pairs} pairs). Best per column in bold.")
    return Table("Paper protocol (SPEC section 6)", note, columns)


def cv_tables(summary: pd.DataFrame, results: pd.DataFrame) -> list[Table]:
    cv = summary[summary["protocol"] == "cv"]
    tables = []
    for budget in sorted(cv["budget"].unique()):
        at = cv[cv["budget"] == budget].sort_values("kendall_tau", ascending=False)
        columns = [
            Column("Predictor", at["predictor"].tolist(), at["predictor"].tolist()),
            _interval_column("Kendall τ [95 % CI]", at, "kendall_tau", "{:.3f}".format, "max"),
            _interval_column("Spearman ρ [95 % CI]", at, "spearman", "{:.3f}".format, "max"),
            _interval_column("MAE [95 % CI]", at, "mae", "{:.4f}".format, "min"),
            _interval_column("Violations [95 % CI]", at, "violations", "{:.1f}".format, "min"),
            _column("p vs best τ", at["p_vs_best"].tolist(), "{:.3f}".format),
        ]
        note = (f"{at['runs'].iloc[0]} folds of {_sizes(results, 'cv')[1]} test items (repeated k-fold over all architectures, stratified by accuracy); "
                "mean and 95 % interval with the Nadeau-Bengio correction for overlapping training sets. "
                "p vs best τ: corrected paired t-test against the predictor with the best mean τ; "
                "p > 0.05 means the data cannot tell the two apart.")
        tables.append(Table(f"Cross-validation, {budget} epochs", note, columns))
    return tables


PUBLISHED_BUDGET = 9  # the paper's best is published for 9 of 90 epochs (SPEC section 6)


def headline(summary: pd.DataFrame) -> list[str]:
    """One sentence per protocol: the best predictor at the largest budget."""
    lines = []
    for protocol, frame in summary.groupby("protocol", sort=False):
        budget = frame["budget"].max()
        at = frame[frame["budget"] == budget]
        if protocol == "paper":
            best = _paper_ranking(summary)[1].iloc[0]
            published = (" (published best: Random Forest (N=200), 25 violations, MAE 0.004, monotonicity 0.968)"
                         if budget == PUBLISHED_BUDGET else "")
            lines.append(f"Paper protocol, {budget} epochs: **{best['predictor']}**, {int(best['violations'])} "
                         f"violations, MAE {best['mae']:.4f}, monotonicity {best['monotonicity']:.3f}{published}.")
        else:
            best = at.sort_values("kendall_tau", ascending=False).iloc[0]
            tied = at[(at["p_vs_best"] > 0.05) & (at["predictor"] != best["predictor"])]["predictor"].tolist()
            lines.append(f"Cross-validation, {budget} epochs: **{best['predictor']}**, Kendall τ "
                         f"{best['kendall_tau']:.3f} [{best['kendall_tau_low']:.3f}, {best['kendall_tau_high']:.3f}], "
                         f"{best['violations']:.1f} violations per test fold"
                         + (f"; not distinguishable from it (p > 0.05): {', '.join(tied)}." if tied else "."))
    return lines


# --- figures ----------------------------------------------------------------------------------

def _paper_ranking(summary) -> tuple[int, pd.DataFrame]:
    """The paper protocol's largest budget and its rows, fewest violations (then lowest MAE) first."""
    paper = summary[summary["protocol"] == "paper"]
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
        ax.set_title(f"{name}\n{int(row['violations'])} violations, MAE {row['mae']:.4f}", fontsize=9)
        ax.set_xlabel("true MaxAccuracy")
    axes[0][0].set_ylabel("predicted")
    fig.suptitle(f"Paper split, {budget} epochs: predicted vs true, best of the {len(best)} best families "
                 "(the reported seed)", fontsize=10)
    fig.tight_layout()
    return fig


def figure_tau_vs_budget(summary):
    """The best member of each family at each budget; cv: mean with its 95 % interval as error bars
    (families side by side around each budget). A predictor without a tau (constant predictions) is left out."""
    protocol = "cv" if (summary["protocol"] == "cv").any() else "paper"
    frame = summary[(summary["protocol"] == protocol) & summary["kendall_tau"].notna()]
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
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    return fig


def figure_rank_matrix(summary, predictions):
    """Rows: predictors (fewest violations on top); columns: the test architectures in true order;
    colour: the rank the predictor gives. A perfect predictor is a smooth ramp."""
    budget, ranked = _paper_ranking(summary)
    order = ranked["predictor"].tolist()
    shown = _reported_predictions(ranked, predictions, budget).sort_values(["predictor", "true", "arch_id"])
    shown["rank"] = shown.groupby("predictor")["predicted"].rank(method="first")
    matrix = np.stack([shown.loc[shown["predictor"] == name, "rank"].to_numpy() for name in order])
    fig, ax = plt.subplots(figsize=(8, 0.22 * len(order) + 1.4))
    image = ax.imshow(matrix, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(len(order)), [f"{n} ({int(v)})" for n, v in zip(order, ranked["violations"])], fontsize=7)
    ax.set_xlabel("test architectures, by true MaxAccuracy (low to high)")
    ax.set_title(f"Paper split, {budget} epochs: predicted rank (violations in brackets)", fontsize=10)
    fig.colorbar(image, ax=ax, label="predicted rank")
    fig.tight_layout()
    return fig


ABOUT = """A budget of k epochs means the predictor sees the scheme and epochs 1..k of training only;
the target is MaxAccuracy over all epochs. The paper's 24 regressors read the paper's feature sets
(SPEC section 6) and standardise them on the training rows; XGBoost and LightGBM read the same
features. LcSVR reads the curve set (scheme, per-epoch accuracy and loss, their first and second
differences, curve statistics); its C, nu and gamma were chosen once by 5-fold CV on the paper
split's 400 training rows, which overlap the cv test folds. Curve extrapolation fits the
best-so-far accuracy with c - a t^-alpha, extrapolates to the last epoch and regresses on that and
the scheme columns (at 0 epochs it is gradient boosting on the eight scheme columns). Violations
are pairs of test architectures ordered the wrong way round (of n (n - 1) / 2 pairs for n test
items, 780 for 40); monotonicity = 1 - violations / pairs."""


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


# --- Markdown and HTML --------------------------------------------------------------------------

def markdown_table(table: Table) -> str:
    lines = ["| " + " | ".join(c.header for c in table.columns) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i, _ in enumerate(table.columns)) + "|"]
    for i in range(len(table.columns[0].values)):
        cells = [f"**{c.text[i]}**" if c.is_best(i) else c.text[i] for c in table.columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(c.header)}</th>" for c in table.columns)
    body = []
    for i in range(len(table.columns[0].values)):
        cells = []
        for c in table.columns:
            value = c.values[i]
            sort_key = "" if value is None else html.escape(str(value))
            css = ' class="best"' if c.is_best(i) else ""
            cells.append(f'<td data-value="{sort_key}"{css}>{html.escape(c.text[i])}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<h2>{html.escape(table.title)}</h2>\n<p>{html.escape(table.note)}</p>\n"
            f'<table class="sortable"><thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(body)
            + "\n</tbody></table>")


STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{padding:3px 8px;border-bottom:1px solid #ddd}
td{text-align:right}td:first-child{text-align:left}th{cursor:pointer;background:#f3f3f3;position:sticky;top:0}
th[data-dir=asc]::after{content:" ▲"}th[data-dir=desc]::after{content:" ▼"}td.best{font-weight:bold;background:#e6f4e6}
img{max-width:100%;display:block;margin:1em 0}code{background:#f3f3f3;padding:1px 4px}"""

SORT_SCRIPT = """document.querySelectorAll("table.sortable th").forEach((th, col) => th.addEventListener("click", () => {
  const table = th.closest("table"), dir = th.dataset.dir === "asc" ? "desc" : "asc";
  table.querySelectorAll("th").forEach(h => delete h.dataset.dir); th.dataset.dir = dir;
  const key = row => { const v = row.cells[col].dataset.value; return v === "" || isNaN(v) ? v : parseFloat(v); };
  const rows = [...table.tBodies[0].rows].sort((a, b) => {
    const x = key(a), y = key(b), c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(y);
    return dir === "asc" ? c : -c; });
  table.tBodies[0].append(...rows);
}));"""


def readme_text(command: str, best: list[str], tables: list[Table], figures: dict) -> str:
    readme = ["# Leaderboard", "", f"Produced by `{command}`.", "", *[f"- {line}" for line in best], "",
              ABOUT, ""]
    for table in tables:
        readme += [f"## {table.title}", "", table.note, "", markdown_table(table), ""]
    readme += ["## Figures", ""] + [f"![{title}]({name})\n" for name, (title, _) in figures.items()]
    readme += ["Tables: `results.parquet` (one row per fit), `summary.parquet` / `summary.csv`, "
               "`predictions.parquet`; the same tables, sortable, in `index.html`.", ""]
    return "\n".join(readme)


def html_page(command: str, best: list[str], tables: list[Table], figures: dict) -> str:
    """One self-contained page: the figures are inlined as base64 PNG."""
    images = "".join(f'<h2>{html.escape(title)}</h2><img alt="{html.escape(title)}" '
                     f'src="data:image/png;base64,{base64.b64encode(data).decode()}">\n'
                     for title, data in figures.values())
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>naap leaderboard</title>'
            f"<style>{STYLE}</style></head><body>\n<h1>naap leaderboard</h1>\n"
            f"<p>Produced by <code>{html.escape(command)}</code>. Click a column header to sort.</p>\n<ul>"
            + "".join(f"<li>{html.escape(line).replace('**', '')}</li>" for line in best) + "</ul>\n"
            + f"<p>{html.escape(ABOUT)}</p>\n"
            + "\n".join(html_table(t) for t in tables) + "\n" + images
            + f"<script>{SORT_SCRIPT}</script></body></html>\n")


def write_leaderboard(out: str | Path, results: pd.DataFrame, predictions: pd.DataFrame, summary: pd.DataFrame,
                      order: list[str], command: str, provenance: dict) -> list[Path]:
    """Write every output into `out`; returns the paths written. Everything is rendered before the
    first file is written, so a failing figure leaves an earlier leaderboard in `out` as it was."""
    out = Path(out)
    predictions = predictions[predictions["protocol"] == "paper"]
    summary = summary.reindex(columns=SUMMARY_SCHEMA.names)
    has_paper = (summary["protocol"] == "paper").any()
    tables = ([paper_table(summary, results, order)] if has_paper else []) + cv_tables(summary, results)
    figures = {}  # file name: (title, PNG bytes), in the order shown
    if has_paper:
        figures["predicted_vs_true.png"] = ("Predicted vs true accuracy of the best predictors (paper split)",
                                            _png(figure_predicted_vs_true(summary, predictions)))
    figures["kendall_tau_vs_budget.png"] = ("Kendall τ against budget, per predictor family",
                                            _png(figure_tau_vs_budget(summary)))
    if has_paper:
        figures["rank_matrix.png"] = ("The paper split's rank matrix", _png(figure_rank_matrix(summary, predictions)))
    best = headline(summary)
    texts = {"README.md": readme_text(command, best, tables, figures),
             "index.html": html_page(command, best, tables, figures)}

    write_parquet(results, out / "results.parquet", RESULTS_SCHEMA, provenance)
    write_parquet(predictions, out / "predictions.parquet", PREDICTIONS_SCHEMA, provenance)
    write_parquet(summary, out / "summary.parquet", SUMMARY_SCHEMA, provenance)
    atomic_write(out / "summary.csv", lambda tmp: summary.to_csv(tmp, index=False, float_format="%.6g"))
    for name, (_, data) in figures.items():
        atomic_write(out / name, lambda tmp, data=data: Path(tmp).write_bytes(data))
    for name, text in texts.items():
        atomic_write(out / name, lambda tmp, text=text: Path(tmp).write_text(text, encoding="utf-8"))
    return [out / n for n in ("results.parquet", "predictions.parquet", "summary.parquet", "summary.csv",
                              *texts, *figures)]
