"""The board's folder (--out), written as a whole.

Every file of a run goes into a hidden sibling, `.NAME.naap-new-<random suffix>`; then the old
board is renamed aside (`.NAME.naap-old-<random suffix>`), the new one renamed into its place, and
the old one removed. A run killed at any moment leaves the old board or no board at NAME, never a
mix of two runs; the next run removes the siblings a killed one left (each run holds a lock on its
own, so a run beside it is left alone). The marker file, written last, lists the board's files: a
folder holding anything else is refused, since the whole folder is replaced.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
from pathlib import Path

from naap.errors import NaapError

MARKER = ".naap-leaderboard"  # written into every folder `naap leaderboard` writes
MARKER_TEXT = "written by `naap leaderboard`; it writes again only into folders holding this file\n"
MAX_MARKER_BYTES = 1 << 16
NEW, OLD = ".naap-new-", ".naap-old-"
# Before the marker listed its files: what a board held, and atomic_write's temporary files of them.
LEGACY_FILES = ("results.parquet", "predictions.parquet", "summary.parquet", "summary.csv", "README.md",
                "index.html", "predicted_vs_true.png", "kendall_tau_vs_budget.png", "rank_matrix.png")


def marker_text(files: list[str]) -> str:
    return MARKER_TEXT + "".join(f"{name}\n" for name in files)


def _listed(out: Path) -> set[str]:
    """The files the marker of the board in `out` lists (a board from before the list: its known files)."""
    path = out / MARKER
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise NaapError(f"--out {out}: {MARKER} is not a regular file")
        with open(path, "rb") as f:
            text = f.read(MAX_MARKER_BYTES + 1).decode("utf-8", errors="replace")
    except OSError as exc:
        raise NaapError(f"--out {out}: cannot read {MARKER} ({exc.strerror or exc})") from None
    if len(text) > MAX_MARKER_BYTES:
        raise NaapError(f"--out {out}: {MARKER} is larger than the {MAX_MARKER_BYTES >> 10} KiB a board's list takes")
    lines = text.splitlines()[1:]
    return {MARKER, *(lines or LEGACY_FILES)}


def _ours(name: str, listed: set[str]) -> bool:
    return name in listed or any(name.startswith(f".{file}.") and name.endswith(".tmp") for file in listed)


def check_out(out: Path) -> None:
    """--out must be new, empty, or a board naap leaderboard wrote (the marker lists its files)."""
    try:
        _check_out(out)
    except OSError as exc:  # an unreadable folder, a path too long
        raise NaapError(f"--out {out}: cannot read it ({exc.strerror or exc})") from None


def _check_out(out: Path) -> None:
    if out.is_symlink():
        raise NaapError(f"--out {out}: a symbolic link; give the folder itself")
    if out.exists() and not out.is_dir():
        raise NaapError(f"--out {out}: exists and is not a directory")
    if not out.is_dir():
        return
    entries = sorted(entry.name for entry in out.iterdir())
    if entries and MARKER not in entries:
        raise NaapError(f"--out {out}: not empty and not written by naap leaderboard (no {MARKER} in it); "
                        "give a new or empty folder")
    here = Path.cwd().resolve()
    if out.resolve() == here or out.resolve() in here.parents:
        raise NaapError(f"--out {out}: the current folder or one above it; the board replaces its folder as a "
                        "whole, so give a folder inside it")
    listed = _listed(out) if entries else set()
    foreign = [name for name in entries if not _ours(name, listed)]
    if foreign:
        raise NaapError(f"--out {out}: holds '{foreign[0][:80]}', which naap leaderboard did not write; the board "
                        "replaces its folder as a whole: move it out first")


def _lock(path: Path) -> int | None:
    """An exclusive lock on the folder `path` (its descriptor), or None where another run holds it."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def remove_left_over(out: Path) -> None:
    """Remove the siblings of `out` that a killed run left: its prefixes, real folders, unlocked."""
    prefixes = (f".{out.name}{NEW}", f".{out.name}{OLD}")
    for entry in os.scandir(out.parent):
        if not (entry.name.startswith(prefixes) and entry.is_dir(follow_symlinks=False)):
            continue
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            fd = _lock(Path(entry.path))
            if fd is not None:
                try:
                    shutil.rmtree(entry.path)
                finally:
                    os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def staged(out: Path):
    """A new hidden sibling of `out` to write the board into, locked while this run holds it, and
    removed if the run fails before `switch`."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_left_over(out)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}{NEW}", dir=out.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # as a folder made with mkdir: mkdtemp makes it private
    except OSError as exc:
        raise NaapError(f"--out {out}: cannot write beside it in {out.parent} ({exc.strerror or exc})") from None
    fd = _lock(tmp)
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        os.close(fd)


def switch(tmp: Path, out: Path) -> None:
    """Put the finished board `tmp` in the place of `out` (absent, empty or an earlier board,
    checked again here): the old one is renamed aside first and removed last."""
    check_out(out)
    fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)  # the board's files are named on disk before it is switched in
    finally:
        os.close(fd)
    try:
        if out.is_dir() and any(out.iterdir()):
            aside = Path(tempfile.mkdtemp(prefix=f".{out.name}{OLD}", dir=out.parent))
            held = _lock(out)
            try:
                try:
                    os.rename(out, aside)  # onto the empty folder just made: atomic
                except OSError:
                    os.rmdir(aside)
                    raise
                try:
                    os.rename(tmp, out)
                except OSError:
                    os.rename(aside, out)  # the old board back where it was
                    raise
                shutil.rmtree(aside)
            finally:
                if held is not None:
                    os.close(held)
        else:
            os.rename(tmp, out)  # out absent, or an empty folder, which rename replaces
    except OSError as exc:
        raise NaapError(f"--out {out}: cannot switch the new board into place ({exc.strerror or exc})") from None
