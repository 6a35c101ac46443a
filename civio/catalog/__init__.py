"""The public catalogue of visible services and institutions."""
