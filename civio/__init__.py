"""civio — an open-source digital-citizenship platform, wire-compatible with IO's PA API."""

__version__ = "0.1.0"
