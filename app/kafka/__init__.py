"""Kafka at the edges: the local development broker, client settings and topic admin."""
