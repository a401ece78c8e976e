"""Errors that fleetwise raises for problems a user can fix.

Every message names where the problem is (file, field), what was allowed and what was given. Values a user
gave are echoed through ``shown`` (bounded), and no message grows past ``MAX_MESSAGE_CHARS``.
"""

from __future__ import annotations

MAX_MESSAGE_CHARS = 2000  # a last bound; messages are built short (``shown``) long before this
MAX_SHOWN_CHARS = 60


def shown(value: object, limit: int = MAX_SHOWN_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters (with the full length noted), for echoing user input.

    Containers are summarised by type and size instead of being printed (a 442 KB plan file must not come
    back as a 442 KB message).
    """
    if isinstance(value, dict | list | tuple | set):
        return f"<{type(value).__name__} of {len(value)} items>"
    try:
        text = repr(value)
    except Exception:  # a value whose repr fails is still a value the user gave
        text = f"<{type(value).__name__}>"
    if len(text) <= limit:
        return text
    return f"{text[: limit - 20]}... ({len(text):,} chars)"


def cut(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
    """``text`` itself (no quotes) cut to about ``limit`` characters."""
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text):,} chars)"


class FleetwiseError(Exception):
    """Base of every user-facing fleetwise error."""

    def __str__(self) -> str:
        text = super().__str__()
        if len(text) <= MAX_MESSAGE_CHARS:
            return text
        return f"{text[: MAX_MESSAGE_CHARS - 40]}... (message cut, {len(text):,} chars)"


class SpecError(FleetwiseError):
    """A catalog entry, case file or other input is malformed or out of range."""


class UnknownIdError(SpecError):
    """An id (model, accelerator, system, fabric) is not in the catalog."""

    def __init__(self, kind: str, given: str, known: list[str], field: str | None = None,
                 not_modelled: str | None = None) -> None:
        where = f" (field: {field})" if field else ""
        if not_modelled:  # a known entry the catalog leaves out on purpose: say why, suggest nothing
            super().__init__(f"{kind} id {shown(given)}{where} is left out of the bundled catalog: {not_modelled}")
        else:
            close = _close_matches(given, known) if len(given) <= 200 else []
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            super().__init__(f"unknown {kind} id {shown(given)}{where}{hint} ('fleetwise catalog list' shows all)")
        self.kind = kind
        self.given = given


class InfeasibleError(FleetwiseError):
    """A plan (or every plan) violates a constraint; the message says which."""


def _close_matches(given: str, known: list[str]) -> list[str]:
    import difflib

    return difflib.get_close_matches(given, known, n=3, cutoff=0.6)
