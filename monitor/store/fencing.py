"""FencedOut: a write refused because another instance now holds what it was about."""


class FencedOut(Exception):
    """Another instance took the lease this write depended on: nothing was written."""
