"""Argument types shared by the commands."""
from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """A whole number >= 1, written in digits (no sign, no spaces)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)
