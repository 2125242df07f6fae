"""The leaderboard's tables, as data (a Table of Columns, each knowing its best value) and as
Markdown and HTML. A predictor flagged near-constant is marked and never the best of a column."""
from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from naap.escape import datum, html_line, markdown_line, plain
from naap.board.metrics import max_violations
from naap.board.protocols import EXTRAPOLATION
from naap.board.summary import by_tau

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


def _text_column(header, values) -> Column:
    """A column of text from data (names, families, descriptions), escaped where it is rendered."""
    return Column(header, list(values), [datum(v) for v in values])


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
            _text_column("Predictor", at["predictor"].tolist()),
            _text_column("Features", at["features"].tolist()),
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
    columns = [_text_column("Predictor", names)]
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
            f"and its ranking is the column's. They read no training epoch. Proxies computed from: {datum(source)}.")
    return Table("Zero-cost proxies and one-column baselines, alone", note, columns,
                 cv["near_constant"].tolist() if len(cv) else [])


def _per_budget(rows: pd.DataFrame, order: list[str], cells) -> tuple[list[Column], list[bool]]:
    """The predictor column, `cells(rows at a budget, budget)` for each budget, the notes; and the flags."""
    names = [n for n in order if n in set(rows["predictor"])]
    flagged = rows.groupby("predictor")["near_constant"].any().reindex(names).tolist()
    columns = [_text_column("Predictor", names)]
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
                 [_text_column("Predictor", names), _text_column("Family", [p.family for p in predictors]),
                  _text_column("Features", [p.features for p in predictors]), _text_column("Settings", text)])


def markdown_table(table: Table) -> str:
    eligible = table.eligible()
    lines = ["| " + " | ".join(c.header for c in table.columns) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i, _ in enumerate(table.columns)) + "|"]
    for i in range(len(table.columns[0].values)):
        cells = [markdown_line(f"**{c.text[i]}**" if c.is_best(i, eligible) else c.text[i]) for c in table.columns]
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
            sort_key = "" if value is None else html.escape(plain(value))
            css = ' class="best"' if c.is_best(i, eligible) else ""
            cells.append(f'<td data-value="{sort_key}"{css}>{html_line(c.text[i])}</td>')
        body.append(f'<tr{" class=flagged" if not eligible[i] else ""}>' + "".join(cells) + "</tr>")
    return (f"<h2>{html.escape(table.title)}</h2>\n<p>{html_line(table.note)}</p>\n"
            f'<table class="sortable"><thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(body)
            + "\n</tbody></table>")
