"""Persistence: SQLAlchemy Core tables, engine set-up and Alembic migrations.

The same schema and the same queries run on SQLite (the embedded default) and
PostgreSQL (production). Only :mod:`baton.services` opens transactions.
"""
