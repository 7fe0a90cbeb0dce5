"""The store's schema migrations (Alembic): `carprice store upgrade` runs them."""
