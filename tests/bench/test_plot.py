"""Learning curves: the plotted lines are the tables' numbers; `naap plot` writes a PNG of the stated size."""
import struct
import subprocess
import sys

import matplotlib
import pandas as pd
import pytest

import naap
from naap.bench.plot import DPI, FIGSIZE

matplotlib.use("Agg")


def naap_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "naap", *map(str, args)], cwd=cwd, capture_output=True, text=True)


def png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    return struct.unpack(">II", header[16:24])


def test_the_lines_are_the_published_curves(release_dir):
    csv = pd.read_csv(release_dir / "naap440.csv").set_index("ModelId")
    accuracy_axes, loss_axes = naap.load().plot_curves([10, "k3w16s2 k3w24s2 k3w32s1"])
    assert [line.get_label() for line in accuracy_axes.lines] == ["10: k3w12s2 k3w16s2 k1w16s1r",
                                                                  "423: k3w16s2 k3w24s2 k3w32s1"]
    for arch_id, accuracy, loss in zip((10, 423), accuracy_axes.lines, loss_axes.lines):
        assert list(accuracy.get_xdata()) == list(range(1, 91)) == list(loss.get_xdata())
        assert list(accuracy.get_ydata()) == [csv.loc[arch_id, f"e{e}Accuracy"] for e in range(1, 91)]
        assert list(loss.get_ydata()) == [csv.loc[arch_id, f"e{e}LossMean"] for e in range(1, 91)]
    matplotlib.pyplot.close("all")


def test_given_axes_are_drawn_on():
    figure, axes = matplotlib.pyplot.subplots(1, 2)
    assert tuple(naap.load().plot_curves(5, axes)) == tuple(axes) and len(axes[0].lines) == 1
    matplotlib.pyplot.close(figure)


def test_naap_plot_writes_a_png_from_any_folder(tmp_path):
    out = naap_cli("plot", "--arch", "10", "--arch", "k3w16s2 k3w24s2 k3w32s1", "--out", tmp_path / "c.png",
                   cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert png_size(tmp_path / "c.png") == (FIGSIZE[0] * DPI, FIGSIZE[1] * DPI)


@pytest.mark.parametrize("args,message", [
    (("--arch", "k3w16s2 k3w24s2 k3w31s1", "--out", "c.png"),
     "--arch: 'k3w16s2 k3w24s2 k3w31s1' is not in naap440: layer 3: width 31 is not an option at this position"),
    (("--arch", "k3w16", "--out", "c.png"), "--arch: 'k3w16': layer 1 'k3w16' is not in the notation"),
    (("--arch", "999", "--out", "c.png"), "--arch: arch_id 999 is not in naap440"),
    (("--arch", "1", "--out", "c.pdf"), "--out c.pdf: must be a .png file"),
    (("no/such/dir", "--arch", "1", "--out", "c.png"), "no/such/dir: dataset directory not found"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    out = naap_cli("plot", *args, cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.startswith(f"naap: error: {message}")
    assert len(out.stderr.strip().splitlines()) == 1 and not list(tmp_path.iterdir())
