"""Shared infrastructure: configuration, database, queue, crypto, errors, logging."""
