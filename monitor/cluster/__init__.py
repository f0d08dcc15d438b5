"""Several instances on one PostgreSQL: who this instance is, and the leases they share."""
