"""Contracts other systems rely on: event schemas (schemas/), routing to topics, topic specs."""
