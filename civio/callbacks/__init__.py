"""Signed HTTP callbacks to senders on every message and notification status change."""
