"""ASGI entry point for servers (``uvicorn baton.api.asgi:app``): settings from the env."""

from baton.api.app import create_app
from baton.heap import freeze_startup_heap

app = create_app()
freeze_startup_heap()
