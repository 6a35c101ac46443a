"""Citizens' profiles, per-service preferences, activations and the subscriptions feed."""
