"""Ingest edges: take mail in, store the raw bytes, answer the sender. Nothing more."""
