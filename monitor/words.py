"""Counted nouns for people: "1 source", "3 sources"."""

from __future__ import annotations


def counted(number: int, singular: str, plural: str | None = None) -> str:
    """`number` with its noun in the right form ("1 problem", "2 problems")."""
    return f"{number} {singular if number == 1 else plural or singular + 's'}"
