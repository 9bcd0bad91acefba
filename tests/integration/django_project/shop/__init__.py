"""The test project's own app: orders, each of which sends a call through the outbox."""
