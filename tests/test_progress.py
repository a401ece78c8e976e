"""The progress bar draws on a terminal only, in place, and ends its line when done."""

from __future__ import annotations

import io

from fleetwise.progress import progress_bar


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_off_a_terminal_or_when_disabled() -> None:
    assert progress_bar("x", stream=io.StringIO()) is None
    assert progress_bar("x", enabled=False, stream=_Tty()) is None


def test_bar_redraws_in_place_and_ends_the_line() -> None:
    out = _Tty()
    bar = progress_bar("validating", stream=out)
    assert bar is not None
    bar(0, 4)
    bar(1, 4)  # within the redraw interval: skipped
    bar(4, 4)  # the end is always drawn
    text = out.getvalue()
    assert text.startswith("\r  validating [") and text.endswith("] 4/4\n")
    assert text.count("\r") == 2 and "#" * 30 in text


def test_library_loops_report_their_progress(catalog) -> None:  # type: ignore[no-untyped-def]
    from fleetwise import api

    calls: list[tuple[int, int]] = []
    api.compare_training("gpt3-125m", ["nvidia_h100_sxm", "nvidia_a100_80gb_sxm"], 8, seq_len=2048,
                         global_batch=64, catalog=catalog, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 2), (2, 2)]
