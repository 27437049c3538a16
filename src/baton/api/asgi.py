"""ASGI entry point for servers (``uvicorn baton.api.asgi:app``): settings from the env."""

from baton.api.app import create_app

app = create_app()
