"""Argument types shared by the command groups: one clear message for a bad number."""

from __future__ import annotations

import argparse
import math


def positive_int(text: str) -> int:
    """A whole number >= 1 ("1e3" is accepted, "2.5" is not)."""
    try:
        v = int(float(text))
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1 or float(text) != v:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def positive_float(text: str) -> float:
    """A number > 0 (infinity allowed, NaN not)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if math.isnan(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def percentile(text: str) -> float:
    """A percentile in (0, 100]."""
    v = positive_float(text)
    if v > 100:
        raise argparse.ArgumentTypeError(f"expected a percentile in (0, 100], got {text!r}")
    return v
