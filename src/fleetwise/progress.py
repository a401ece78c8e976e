"""Progress on stderr for commands that take seconds: one reusable bar, shown only on a terminal.

Entry point: ``progress_bar(label)`` returns a ``ProgressFn`` (``fn(done, total)``) for the library's
long loops (training search blocks, validation cases, compared systems, chip counts tried), or None when
the stream is not a terminal (pipes, files, ``--json`` captures stay clean). Library functions take
``progress: ProgressFn | None`` and call it; the CLI decides whether to pass one.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

ProgressFn = Callable[[int, int], None]
WIDTH = 30
MIN_INTERVAL_S = 0.1  # redraw at most this often (and always at the end)


def progress_bar(label: str, enabled: bool | None = None, stream: TextIO | None = None) -> ProgressFn | None:
    """A bar ``label [#####     ] done/total`` redrawn in place on ``stream`` (default stderr).

    Args:
        label: what is being counted (``searching``, ``validating``, ...).
        enabled: None = only when ``stream`` is a terminal; False = no bar (returns None); True = always.
        stream: where to draw (default ``sys.stderr``).
    """
    out = stream if stream is not None else sys.stderr
    if enabled is None:
        enabled = bool(getattr(out, "isatty", lambda: False)())
    if not enabled:
        return None
    last = [-1.0]

    def bar(done: int, total: int) -> None:
        now = time.monotonic()
        finished = done >= total
        if not finished and now - last[0] < MIN_INTERVAL_S:
            return
        last[0] = now
        frac = min(max(done / max(total, 1), 0.0), 1.0)
        out.write(f"\r  {label} [{'#' * int(frac * WIDTH):<{WIDTH}}] {done:,}/{total:,}")
        if finished:
            out.write("\n")
        out.flush()

    return bar
