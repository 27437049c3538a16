"""Baton: the marketing-to-sales lead handoff engine."""

__version__ = "0.11.0"
"""The one version number (``pyproject.toml`` reads it: ``dynamic = ["version"]``), as
``/healthz`` and the User-Agents say it: the last release until the next is made. A
tree with changes under the CHANGELOG's ``(unreleased)`` heading still says the release
it started from; the release commit sets the new number and dates the heading."""
