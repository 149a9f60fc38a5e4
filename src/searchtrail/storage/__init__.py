"""Storage: the protocols the service uses (``api``) and the SQL backend (``sql``)."""
