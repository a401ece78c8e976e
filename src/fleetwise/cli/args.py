"""Argument types shared by the command groups: one clear message for a bad number."""

from __future__ import annotations

import argparse
import math
from typing import NoReturn

from fleetwise.errors import cut, shown

MAX_USAGE_ERROR_CHARS = 240


class BoundedArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one bounded line (argparse echoes values in full)."""

    def error(self, message: str) -> NoReturn:
        super().error(cut(" ".join(message.split()), MAX_USAGE_ERROR_CHARS))


def positive_int(text: str) -> int:
    """A whole number >= 1 ("1e3" is accepted, "2.5" is not)."""
    try:
        v = int(float(text))
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {shown(text)}") from None
    if v < 1 or float(text) != v:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {shown(text)}")
    return v


def positive_float(text: str) -> float:
    """A number > 0 (infinity allowed, NaN not)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {shown(text)}") from None
    if math.isnan(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {shown(text)}")
    return v


def percentile(text: str) -> float:
    """A percentile in (0, 100]."""
    v = positive_float(text)
    if v > 100:
        raise argparse.ArgumentTypeError(f"expected a percentile in (0, 100], got {shown(text)}")
    return v
