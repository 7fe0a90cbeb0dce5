"""The carprice HTTP price-estimate service (Flask app factory, gunicorn config, OpenAPI)."""
