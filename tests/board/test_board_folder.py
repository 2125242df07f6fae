"""The board's folder is written as a whole: a failure between any two files, or a kill -9 at any
point, leaves the old board or none (never a mix of two runs), and the same command then works
with no clean-up by hand."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from naap import _io, cli
from naap.board import folder, report
from tests.conftest import REPO

DATA = REPO / "data" / "naap440"
QUICK = ["--predictor-set", "none", "--predictor", "1-NN", "--protocol", "cv", "--budgets", "0", "--cv-repeats", "1",
         "--jobs", "1", "--quiet"]


def snapshot(path: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def left_beside(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def complete(out: Path) -> bool:
    """Every file the marker lists is there, and nothing else."""
    listed = (out / folder.MARKER).read_text().splitlines()[1:]
    return sorted(listed + [folder.MARKER]) == sorted(p.name for p in out.iterdir()) and len(listed) >= 7


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """A board written by `naap leaderboard`, and the arguments its writer was called with."""
    out = tmp_path_factory.mktemp("board") / "lb"
    calls = []
    real = report.write_leaderboard

    def recording(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    report.write_leaderboard = recording
    try:
        assert cli.main(["leaderboard", str(DATA), "--out", str(out), *QUICK]) == 0
    finally:
        report.write_leaderboard = real
    return out, calls[0]


def fresh_copy(board, tmp_path) -> Path:
    out = tmp_path / "lb"
    out.mkdir()
    for name, data in snapshot(board[0]).items():
        (out / name).write_bytes(data)
    return out


def write_again(board, out):
    (_, *rest), kwargs = board[1]
    return report.write_leaderboard(out, *rest, **kwargs)


class Failure(Exception):
    pass


@pytest.mark.parametrize("failing", range(8))  # 3 tables, the CSV, 1 figure, 2 pages, the marker
def test_a_failure_at_any_file_leaves_the_old_board_as_it_was(board, tmp_path, monkeypatch, failing):
    out = fresh_copy(board, tmp_path)
    before = snapshot(out)
    calls = []
    real = _io.atomic_write

    def atomic_write(path, write):
        calls.append(path)
        if len(calls) > failing:
            raise Failure(f"the disk went away writing {Path(path).name}")
        return real(path, write)

    monkeypatch.setattr(_io, "atomic_write", atomic_write)
    monkeypatch.setattr(report, "atomic_write", atomic_write)
    with pytest.raises(Failure):
        write_again(board, out)
    assert snapshot(out) == before and left_beside(out) == []
    monkeypatch.undo()
    write_again(board, out)
    assert complete(out) and left_beside(out) == []


@pytest.mark.parametrize("failing", [1, 2])
def test_a_failed_switch_puts_the_old_board_back(board, tmp_path, monkeypatch, failing):
    """The first rename moves the old board aside, the second the new one in: either may fail."""
    out = fresh_copy(board, tmp_path)
    before = snapshot(out)
    calls = []
    real = os.rename

    def rename(src, dst):
        calls.append(src)
        if len(calls) == failing:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(folder.os, "rename", rename)
    with pytest.raises(Exception, match="cannot switch the new board into place"):
        write_again(board, out)
    assert snapshot(out) == before and left_beside(out) == []


KILLER = textwrap.dedent('''
    import os, signal, sys
    from pathlib import Path

    point, argv = sys.argv[1], sys.argv[2:]
    real_replace, real_rename = os.replace, os.rename

    def kill():
        os.kill(os.getpid(), signal.SIGKILL)

    def replace(src, dst, **kwargs):
        real_replace(src, dst, **kwargs)
        if Path(dst).name == point:
            kill()

    def rename(src, dst, **kwargs):
        real_rename(src, dst, **kwargs)
        if (point == "aside" and ".naap-old-" in Path(dst).name) or \\
                (point == "switched" and ".naap-new-" in Path(src).name):
            kill()

    os.replace, os.rename = replace, rename
    from naap.cli import main
    sys.exit(main(argv))
''')


@pytest.mark.parametrize("point", ["results.parquet", "README.md", "aside", "switched"])
def test_a_run_killed_at_any_point_leaves_the_old_board_or_none_and_the_same_command_works(board, tmp_path,
                                                                                           capsys, point):
    out = fresh_copy(board, tmp_path)
    before = snapshot(out)
    argv = ["leaderboard", str(DATA), "--out", str(out), *QUICK]
    # Output to a file, not a pipe: the killed run's worker process, orphaned, keeps its copy of the
    # output open until it notices its parent is gone; a pipe would make this wait for that.
    with open(tmp_path / "killed.err", "w+") as err:
        killed = subprocess.run([sys.executable, "-c", KILLER, point, *argv], stdout=subprocess.DEVNULL, stderr=err,
                                timeout=300)
    assert killed.returncode == -9, (tmp_path / "killed.err").read_text()
    if point == "aside":
        assert not out.exists()  # between the two renames: no board at all, never half of one
    elif point == "switched":
        assert complete(out) and snapshot(out) != before  # the new board, whole
    else:
        assert snapshot(out) == before
    assert left_beside(out)  # what the killed run left beside it
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert complete(out) and left_beside(out) == []


def test_a_board_holding_a_file_of_someone_else_is_refused_and_left_as_it_was(board, tmp_path, capsys):
    out = fresh_copy(board, tmp_path)
    (out / "my-notes.txt").write_text("mine\n")
    before = snapshot(out)
    code = cli.main(["leaderboard", str(DATA), "--out", str(out), *QUICK])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "holds 'my-notes.txt', which naap leaderboard did not write" in err and snapshot(out) == before


def test_a_board_from_before_the_list_is_replaced(board, tmp_path, capsys):
    """Its marker names no file: the files such a board held are its own."""
    out = fresh_copy(board, tmp_path)
    (out / folder.MARKER).write_text(folder.MARKER_TEXT)
    (out / ".summary.csv.abc123.tmp").write_text("a temporary file a killed run left\n")
    assert cli.main(["leaderboard", str(DATA), "--out", str(out), *QUICK]) == 0
    assert complete(out) and left_beside(out) == []


@pytest.mark.parametrize("out", ["link", "."])
def test_a_symbolic_link_or_the_current_folder_is_refused(board, tmp_path, monkeypatch, capsys, out):
    real = fresh_copy(board, tmp_path)
    (tmp_path / "link").symlink_to(real)
    monkeypatch.chdir(real if out == "." else tmp_path)
    before = snapshot(real)
    code = cli.main(["leaderboard", str(DATA), "--out", out, *QUICK])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and snapshot(real) == before
    assert ("a symbolic link" if out == "link" else "the current folder or one above it") in err
