"""Table definitions (SQLAlchemy Core); Alembic migrations create them."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from monitor.store.types import TagList, UTCDateTime

metadata = MetaData()

sources = Table(
    "sources",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("platform", String(50), nullable=False),
    Column("brand", String(200), nullable=False),
    Column("cursor", JSON, nullable=False, default=dict),
    # First successful poll: the moment from which counting starts (DESIGN.md section 2).
    Column("tracking_start", UTCDateTime, nullable=True),
    Column("last_success_at", UTCDateTime, nullable=True),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(200), nullable=False),
    Column("platform_id", String(200), nullable=False),
    Column("thread_id", String(200), nullable=False),
    Column("parent_id", String(200), nullable=True),
    Column("seq", BigInteger, nullable=False),
    Column("author_id", String(200), nullable=True),
    Column("author_name", String(500), nullable=True),
    Column("text", Text, nullable=False),
    Column("permalink", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("detected_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("is_brand", Boolean, nullable=False),
    Column("hidden", Boolean, nullable=False, default=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("edited", Boolean, nullable=False, default=False),
    # Text and author purged or erased (migration 0007): later polls do not write them back.
    Column("redacted_at", UTCDateTime, nullable=True),
    # Open networks (migration 0008): the interaction rule's verdict and the watched hashtags,
    # stored as " tag1 tag2 " so that a campaign is `LIKE '% tag %'`.
    Column("kind", String(20), nullable=True),
    Column("tags", TagList, nullable=True),
    UniqueConstraint("source", "platform_id", name="uq_messages_source_platform_id"),
    Index("ix_messages_source_thread", "source", "thread_id"),
    Index("ix_messages_source_created", "source", "created_at"),
)

items = Table(
    "items",
    metadata,
    Column("message_id", Integer, ForeignKey("messages.id"), primary_key=True),
    Column("source", String(200), nullable=False),
    Column("brand", String(200), nullable=False),
    Column("thread_id", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("period", String(20), nullable=False),
    Column("weekend", Boolean, nullable=False),
    Column("holiday", String(200), nullable=True),
    Column("state", String(20), nullable=False),
    Column("dismissed_reason", String(50), nullable=True),
    Column("target_seconds", Float, nullable=False),
    Column("warning_at", UTCDateTime, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("response_message_id", Integer, ForeignKey("messages.id"), nullable=True),
    Column("responder", String(500), nullable=True),
    Column("responded_at", UTCDateTime, nullable=True),
    Column("response_seconds", Float, nullable=True),
    Column("response_sla_seconds", Float, nullable=True),
    # The consumer's name, kept only while the item waits (the queue page shows it).
    Column("author_name", String(500), nullable=True),
    Index("ix_items_source_state", "source", "state"),
    Index("ix_items_source_thread", "source", "thread_id"),
    Index("ix_items_created", "created_at"),
)

alert_outbox = Table(
    "alert_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # notification id + receiver: the idempotency key receivers see (X-Webcare-Delivery).
    Column("delivery_id", String(200), nullable=False, unique=True),
    Column("receiver", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("notification", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("state", String(20), nullable=False),  # pending | delivered | dead
    Column("last_error", Text, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Index("ix_alert_outbox_receiver_state", "receiver", "state", "id"),
)

# Which item was alerted for which kind: makes each alert exactly-once across restarts.
item_alerts = Table(
    "item_alerts",
    metadata,
    Column("item_id", Integer, primary_key=True),
    Column("kind", String(20), primary_key=True),
    Column("notification_id", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Escalation and reminders after a breach, and acknowledgements: the next step's instant is
# persisted (next_at), so a restart resumes exactly where it stopped.
alert_followups = Table(
    "alert_followups",
    metadata,
    Column("item_id", Integer, primary_key=True),
    Column("source", String(200), nullable=False),
    Column("breached_at", UTCDateTime, nullable=True),  # None: acknowledged before a breach
    Column("escalations_sent", Integer, nullable=False, default=0),
    Column("reminders_sent", Integer, nullable=False, default=0),
    Column("next_at", UTCDateTime, nullable=True),  # None: nothing more to send
    Column("acked_at", UTCDateTime, nullable=True),
    Column("acked_by", String(200), nullable=True),
    Column("stopped_at", UTCDateTime, nullable=True),
    Column("stop_reason", String(20), nullable=True),  # acked | answered | dismissed | done
    Index("ix_alert_followups_next_at", "next_at"),
)

# One handover per source and shift start: sent exactly once, across restarts too.
alert_handovers = Table(
    "alert_handovers",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("starts_at", UTCDateTime, primary_key=True),
    Column("student", String(200), nullable=False),
    Column("notification_id", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

cluster_leases = Table(
    "cluster_leases",
    metadata,
    Column("key", String(250), primary_key=True),
    Column("holder", String(100), nullable=True),
    Column("fence", BigInteger, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

cluster_instances = Table(
    "cluster_instances",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
)

cluster_nudges = Table(
    "cluster_nudges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(200), nullable=False),
    Column("body", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("scopes", JSON, nullable=False),
    Column("brands", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("last_used_at", UTCDateTime, nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("via", String(20), nullable=False),
    Column("action", String(40), nullable=False),
    Column("item_id", Integer, nullable=True),
    Column("source", String(200), nullable=True),
    Column("brand", String(200), nullable=True),
    Column("reason", Text, nullable=True),
    Column("origin", String(200), nullable=True),
    Column("detail", JSON, nullable=True),
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_item", "item_id"),
)

# The pseudonym key generated when the config names none (docs/data-protection.md).
privacy_keys = Table(
    "privacy_keys",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("value", String(200), nullable=False),
)
