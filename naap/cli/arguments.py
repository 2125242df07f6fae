"""Arguments shared by the commands: whole numbers, and the leaderboard's budgets, protocols and cv repeats
(`naap leaderboard` and `naap folds` take them alike)."""
from __future__ import annotations

import argparse
import math

from naap.errors import NaapError


def positive_int(text: str) -> int:
    """A whole number >= 1, written in digits (no sign, no spaces)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


DEFAULT_BUDGETS = "0,3,6,9"
DEFAULT_PROTOCOLS = "paper,cv,extrapolation"
MAX_CV_REPEATS = 100  # 1,100 folds: more would run for days before anything is written


def whole(text: str, option: str, what: str) -> int:
    """--option's text as an int, or one NaapError saying what the number counts."""
    try:
        return int(text)
    except ValueError:
        raise NaapError(f"--{option} {text[:40]!r}: expected a whole number ({what})") from None


def protocols_of(text: str) -> list[str]:
    """--protocol: comma-separated protocol names (`extrapolation` is both extrapolation protocols), each once."""
    # naap.board.protocols loads scikit-learn: only when the command runs, not for its --help
    from naap.board.protocols import EXTRAPOLATION, PROTOCOLS

    chosen = []
    for name in (p.strip() for p in text.split(",") if p.strip()):
        expanded = EXTRAPOLATION if name == "extrapolation" else (name,)
        unknown = [p for p in expanded if p not in PROTOCOLS]
        if unknown:
            raise NaapError(f"--protocol '{text}': unknown protocol '{unknown[0]}' "
                            f"(known: {', '.join(PROTOCOLS)}, extrapolation = both extrapolation protocols)")
        chosen += expanded
    if not chosen:
        raise NaapError(f"--protocol '{text}': empty")
    return list(dict.fromkeys(chosen))


def budgets_of(text: str) -> list[int]:
    """--budgets: comma-separated epochs, sorted, each once."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise NaapError(f"--budgets '{text}': expected comma-separated integers, e.g. {DEFAULT_BUDGETS}") from None
    if not values:
        raise NaapError(f"--budgets '{text}': empty")
    return sorted(set(values))


def cv_repeats_of(text: str) -> int:
    """--cv-repeats: a whole number from 1 to MAX_CV_REPEATS."""
    repeats = whole(text, "cv-repeats", "of repeats of the k-fold split")
    if not 1 <= repeats <= MAX_CV_REPEATS:
        raise NaapError(f"--cv-repeats {repeats}: must be at least 1 and at most {MAX_CV_REPEATS}")
    return repeats


def positive_number(text: str) -> float:
    """A finite number > 0 ('nan', 'inf' and '1e999' refused: a limit that NaN compares false against is no limit)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r:.60}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r:.60}")
    return value
