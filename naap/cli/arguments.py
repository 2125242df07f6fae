"""Argument types shared by the commands."""
from __future__ import annotations

import argparse
import math


def positive_int(text: str) -> int:
    """A whole number >= 1, written in digits (no sign, no spaces)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def positive_number(text: str) -> float:
    """A finite number > 0 ('nan', 'inf' and '1e999' refused: a limit that NaN compares false against is no limit)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r:.60}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r:.60}")
    return value
