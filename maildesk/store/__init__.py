"""Persistence: models, engine and sessions, queries. All SQL lives under this package."""
