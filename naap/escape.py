"""Strings from data, recipes and plug-ins, escaped for the format they land in.

The page's lines (naap.board.page) mix naap's own light markup (`**bold**`, `code`) with data: a
predictor's name, a path, a provenance value. Each datum is wrapped with `datum()` where the line
is composed, and each renderer escapes the wrapped parts for its format and nothing else:
`markdown_line` (README.md), `html_line` (index.html), `plain_line` (the terminal).
"""
from __future__ import annotations

import html
import re

OPEN, CLOSE = "\ue000", "\ue001"  # private-use code points around a datum in a line
_SPLIT = re.compile(f"{OPEN}(.*?){CLOSE}", re.DOTALL)
# C0 and C1 controls, DEL, the Unicode line and paragraph separators: one line, no terminal escapes
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_~\[\]|$])")  # $: GitHub's math
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # OWASP, CSV injection


def one_line(text: str) -> str:
    """Every control character (newlines, tabs, ANSI escapes) as a space; the markers dropped."""
    return _CONTROL.sub(" ", str(text)).replace(OPEN, "").replace(CLOSE, "")


def datum(value) -> str:
    """`value` as text marked as data inside a page line."""
    return f"{OPEN}{one_line(value)}{CLOSE}"


def markdown(text: str) -> str:
    """Inline Markdown that renders as `text`, on one line: no HTML (entities), no link, no table
    cell break, no emphasis or code span of its own."""
    text = html.escape(one_line(text), quote=False)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def code_span(text: str) -> str:
    """`text` as one Markdown code span: a fence of more backticks than any run inside it."""
    text = one_line(text)
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or text.startswith(" ") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _parts(line: str) -> list[tuple[str, bool]]:
    """(text, is_datum) pieces of a line, in order."""
    pieces = _SPLIT.split(line)
    return [(piece, i % 2 == 1) for i, piece in enumerate(pieces) if piece]


def markdown_line(line: str) -> str:
    """A page line as Markdown: naap's markup kept; data escaped (inside naap's `code` spans,
    where Markdown escapes nothing, a datum's backticks become ' so the span cannot end early)."""
    out, in_code = [], False
    for text, is_datum in _parts(line):
        if not is_datum:
            in_code ^= text.count("`") % 2 == 1
            out.append(text)
        else:
            out.append(text.replace("`", "'") if in_code else markdown(text))
    return "".join(out)


def html_line(line: str) -> str:
    """A page line as HTML: naap's `**` as <b>, everything escaped, data never read as markup."""
    out, bold = [], False
    for text, is_datum in _parts(line):
        if is_datum:
            out.append(html.escape(text))
            continue
        pieces = text.split("**")
        for i, piece in enumerate(pieces):
            if i:
                bold = not bold
                out.append("<b>" if bold else "</b>")
            out.append(html.escape(piece))
    return "".join(out) + ("</b>" if bold else "")


def plain_line(line: str) -> str:
    """A page line for the terminal: no markup, no control character from data."""
    return "".join(text if is_datum else text.replace("**", "") for text, is_datum in _parts(line))


def plain(text: str) -> str:
    """A string that may hold data, for HTML attributes or a terminal: the markers dropped."""
    return str(text).replace(OPEN, "").replace(CLOSE, "")


def csv_cell(value):
    """A text cell on one line (no CR or LF to split a row), with a leading ' where a spreadsheet
    would read it as a formula (OWASP); numbers and other values are returned as they are."""
    if not isinstance(value, str):
        return value
    return ("'" if value.startswith(CSV_FORMULA_START) else "") + one_line(value)


def figure_text(text: str) -> str:
    """Text for a matplotlib title, label or legend: one line, and `$` literal (no mathtext)."""
    return one_line(text).replace("$", r"\$")
