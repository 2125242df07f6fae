"""naap.escape against hostile strings, each checked by an independent reading of its format:
CommonMark's own unescaping rules for Markdown, Python's HTML parser for HTML, the csv module for
CSV, and matplotlib itself for figure text."""
import csv
import html
import io
import re
from html.parser import HTMLParser

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from naap import escape
from naap.board.report import csv_frame

HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "a | b | c",
    "line\nbreak\r\n# injected heading",
    "[click](javascript:alert(1))",
    "![img](javascript:alert(1))",
    "<javascript:alert(1)>",
    "**bold** _em_ ~~gone~~ `code`",
    "\\| an escaped pipe \\",
    "&lt;already escaped&gt; &amp;",
    "\x1b[31mred\x1b[0m and \x07 bell",
    "=1+1",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(A1:A9)",
    "+1",
    "\tstarts with a tab",
    "\rstarts with a CR",
    "$\\frac{1}{0}$ and $\\notacommand$",
    "paragraph\u2028separator\u2029and NEL\x85",
    "\ue000marker\ue001 inside",
    "GP-ARD (arch) + linear (curve)",
]
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def shown(text: str) -> str:
    """What the reader must see: the text on one line, every control character a space."""
    return CONTROL.sub(" ", text).replace("\ue000", "").replace("\ue001", "")


def commonmark_text(inline: str) -> str:
    """CommonMark's reading of inline text that holds no markup: a backslash before ASCII
    punctuation stands for that character, entities for theirs (spec sections 2.4 and 2.5)."""
    return html.unescape(re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", inline))


class Tags(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def parsed(fragment: str) -> Tags:
    parser = Tags()
    parser.feed(fragment)
    parser.close()
    return parser


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_reads_back_as_the_text_and_holds_no_markup(text):
    escaped = escape.markdown(text)
    assert commonmark_text(escaped) == shown(text)
    assert "\n" not in escaped and "\r" not in escaped and "<" not in escaped and ">" not in escaped
    # every character that could open a link, a cell, emphasis or a code span is backslash-escaped
    for match in re.finditer(r"[|\[\]`*_~$]", escaped):
        backslashes = len(escaped[:match.start()]) - len(escaped[:match.start()].rstrip("\\"))
        assert backslashes % 2 == 1, (text, escaped)


@pytest.mark.parametrize("text", HOSTILE)
def test_a_datum_in_a_markdown_line_keeps_the_lines_own_markup(text):
    line = escape.markdown_line(f"best: **{escape.datum(text)}**, run `naap x {escape.datum(text)} --y`")
    bold = re.fullmatch(r"best: \*\*(.*)\*\*, run (`+)(.*)\2", line)
    assert bold, line
    assert commonmark_text(bold[1]) == shown(text)
    assert bold[3] == f"naap x {shown(text).replace('`', chr(39))} --y"  # a code span ends at no datum's backtick


@pytest.mark.parametrize("text", HOSTILE)
def test_html_line_has_only_the_lines_own_tags_and_shows_the_text(text):
    line = escape.html_line(f"the best: **{escape.datum(text)}** ({escape.datum(text)})")
    reading = parsed(line)
    assert reading.tags == ["b"]
    assert "".join(reading.text) == f"the best: {shown(text)} ({shown(text)})"


@pytest.mark.parametrize("text", HOSTILE)
def test_the_terminal_gets_no_control_character(text):
    line = escape.plain_line(f"**{escape.datum(text)}** wins")
    assert line == f"{shown(text)} wins" and not CONTROL.search(line)


def test_a_code_span_holds_any_path():
    for text in ["plain", "a`b", "``x``", "`leading", "new\nline | pipe <b>"]:
        span = escape.code_span(text)
        fence = re.match("`+", span)[0]
        inner = span[len(fence):-len(fence)]
        assert span.endswith(fence) and f"`{fence}" not in inner and "\n" not in span
        body = inner[1:-1] if inner.startswith(" ") and inner.endswith(" ") and inner.strip() else inner
        assert body == shown(text)  # CommonMark strips one space each side of such a span


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised_and_numbers_stay_numbers():
    frame = pd.DataFrame({"predictor": HOSTILE, "family": ["=HYPERLINK(\"x\")"] * len(HOSTILE),
                          "mae": [-0.5 + i for i in range(len(HOSTILE))], "seed": [None, -3] * (len(HOSTILE) // 2)
                          + [None] * (len(HOSTILE) % 2)})
    buffer = io.StringIO()
    csv_frame(frame).to_csv(buffer, index=False, float_format="%.6g")
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    for row, text in zip(rows, HOSTILE):
        expected = ("'" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else "") + shown(text)
        assert row["predictor"] == expected  # on one line: no CR or LF left to split a row
        assert row["family"] == "'=HYPERLINK(\"x\")"
    assert [float(row["mae"]) for row in rows] == frame["mae"].tolist()  # -0.5 is not prefixed
    assert rows[1]["seed"] == "-3"


@pytest.mark.parametrize("text", ["$\\notacommand$", "a $\\frac{1}{$ b", "cost $5 and $6"])
def test_figure_text_is_never_read_as_mathtext(text):
    matplotlib.use("Agg")

    def render(title):
        fig, ax = plt.subplots()
        ax.set_title(title)
        ax.plot([0, 1], [0, 1], label=title)
        ax.legend()
        try:
            fig.savefig(io.BytesIO(), format="png")
        finally:
            plt.close(fig)

    if text.count("$") >= 2 and "\\" in text:
        with pytest.raises(ValueError):  # what the raw text does to matplotlib
            render(text)
    render(escape.figure_text(text))
