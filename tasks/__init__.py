"""Celery tasks: thin wrappers that load by id and call concierge/messaging services."""
