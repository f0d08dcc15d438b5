"""Pure business-time arithmetic and SLA evaluation; `now` is always a parameter."""
