"""Baton: the marketing-to-sales lead handoff engine."""

__version__ = "0.11.0"
