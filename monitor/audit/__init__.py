"""Who did what: the append-only audit trail and the named, scoped API tokens."""

from monitor.audit.export import to_csv, to_json
from monitor.audit.log import ACTIONS, VIAS, Actor, AuditEntry, AuditLog
from monitor.audit.privacy import erasure_entry, privacy_counts, record_privacy
from monitor.audit.tokens import (
    ALL_BRANDS,
    SCOPES,
    TokenError,
    TokenRecord,
    Tokens,
    check_scopes,
    token_hash,
)

__all__ = [
    "ACTIONS",
    "ALL_BRANDS",
    "SCOPES",
    "VIAS",
    "Actor",
    "AuditEntry",
    "AuditLog",
    "TokenError",
    "TokenRecord",
    "Tokens",
    "check_scopes",
    "erasure_entry",
    "privacy_counts",
    "record_privacy",
    "to_csv",
    "to_json",
    "token_hash",
]
