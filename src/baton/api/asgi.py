"""ASGI entry point for servers (``uvicorn baton.api.asgi:app``): settings from the env."""

from baton.api.app import create_app
from baton.heap import freeze_startup_heap
from baton.services.model_store import import_model_libraries_if_scored

app = create_app()
import_model_libraries_if_scored(app.state.context)
freeze_startup_heap()
