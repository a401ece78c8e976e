"""Errors that fleetwise raises for problems a user can fix.

Every message names where the problem is (file, field), what was allowed and what was given.
"""

from __future__ import annotations


class FleetwiseError(Exception):
    """Base of every user-facing fleetwise error."""


class SpecError(FleetwiseError):
    """A catalog entry, case file or other input is malformed or out of range."""


class UnknownIdError(SpecError):
    """An id (model, accelerator, system, fabric) is not in the catalog."""

    def __init__(self, kind: str, given: str, known: list[str], field: str | None = None) -> None:
        close = _close_matches(given, known)
        where = f" (field: {field})" if field else ""
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(f"unknown {kind} id {given!r}{where}{hint} ('fleetwise catalog list' shows all)")
        self.kind = kind
        self.given = given


class InfeasibleError(FleetwiseError):
    """A plan (or every plan) violates a constraint; the message says which."""


def _close_matches(given: str, known: list[str]) -> list[str]:
    import difflib

    return difflib.get_close_matches(given, known, n=3, cutoff=0.6)
