"""The leaderboard's folder: the schemas of its tables and the writer of every file in it.

    results.parquet       one row per protocol, predictor, budget and seed (fixed splits) or fold
                          (cv); fit_seconds is the wall time of the fit behind the row (rows read
                          off one fit, such as the sizes of one forest, share it)
    predictions.parquet   the fixed-split protocols' test predictions (behind their rows of results)
    summary.parquet/.csv  one row per protocol, predictor and budget (see naap.board.summary.summarise)
    README.md, index.html the page (naap.board.page), with its figures as PNG files
    .naap-leaderboard     the marker, written last: the folder is a board, and these are its files

The folder is written as a whole (naap.board.folder): a killed run leaves the old board or none.
Text from data lands escaped: the page through naap.escape, summary.csv's text cells
neutralised where a spreadsheet would read a formula.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from naap._io import atomic_write, write_parquet
from naap.escape import csv_cell
from naap.board.folder import MARKER, marker_text, staged, switch
from naap.board.page import Page, html_page, readme_text
from naap.board.summary import METRICS

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
def csv_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """summary.csv's frame: text cells that a spreadsheet would run as a formula get a leading '
    (naap.escape.csv_cell); numbers stay numbers."""
    text = summary.select_dtypes(include=["object", "string"]).columns
    return summary.assign(**{column: summary[column].map(csv_cell) for column in text})


def write_leaderboard(out: str | Path, results: pd.DataFrame, predictions: pd.DataFrame, summary: pd.DataFrame,
                      page: Page, provenance: dict) -> list[Path]:
    """Write the board into `out` as a whole (naap.board.folder): every file into a hidden
    sibling, the marker listing them last, then switched into place. Returns the paths written."""
    out = Path(out)
    predictions = predictions[predictions["protocol"] != "cv"]
    summary = summary.reindex(columns=SUMMARY_SCHEMA.names)
    texts = {"README.md": readme_text(page), "index.html": html_page(page)}
    names = ["results.parquet", "predictions.parquet", "summary.parquet", "summary.csv", *texts, *page.figures]
    with staged(out) as tmp:
        write_parquet(results, tmp / "results.parquet", RESULTS_SCHEMA, provenance)
        write_parquet(predictions, tmp / "predictions.parquet", PREDICTIONS_SCHEMA, provenance)
        write_parquet(summary, tmp / "summary.parquet", SUMMARY_SCHEMA, provenance)
        atomic_write(tmp / "summary.csv", lambda path: csv_frame(summary).to_csv(path, index=False,
                                                                                 float_format="%.6g"))
        for name, (_, data) in page.figures.items():
            atomic_write(tmp / name, lambda path, data=data: Path(path).write_bytes(data))
        for name, text in texts.items():
            atomic_write(tmp / name, lambda path, text=text: Path(path).write_text(text, encoding="utf-8"))
        atomic_write(tmp / MARKER, lambda path: Path(path).write_text(marker_text(names), encoding="utf-8"))
        switch(tmp, out)
    return [out / name for name in names]
