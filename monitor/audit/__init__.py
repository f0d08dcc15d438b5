"""Who did what: the append-only audit trail and the named, scoped API tokens."""

from monitor.audit.log import ACTIONS, VIAS, AuditEntry, AuditLog

__all__ = ["ACTIONS", "VIAS", "AuditEntry", "AuditLog"]
