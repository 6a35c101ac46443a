"""Senders: services, their owners, subscription keys, groups, CIDRs and rate limits."""
