"""Use cases: one function each, called the same way by the API, the CLI, the worker
and the tests. Each opens exactly one transaction through :class:`Context`."""

from baton.services.context import Context, open_context

__all__ = ["Context", "open_context"]
