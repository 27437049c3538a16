"""Baton: the marketing-to-sales lead handoff engine."""

__version__ = "0.10.0"
