"""Alerting: roster, notifications, receivers and a persistent outbox."""
