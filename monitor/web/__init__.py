"""HTTP endpoints: metrics, health, and (later) the API and queue page."""
