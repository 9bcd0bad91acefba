"""Integrations with web frameworks: :mod:`dispatch.contrib.django` (the outbox as a Django app)."""
