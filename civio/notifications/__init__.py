"""Alerts for new messages: the channel decision, email and push delivery, and their records."""
