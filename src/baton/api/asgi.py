"""ASGI entry point for servers (``uvicorn baton.api.asgi:app``): settings from the env."""

from baton.api.app import create_app
from baton.heap import freeze_startup_heap
from baton.services.model_store import preload_scoring_model

app = create_app()
preload_scoring_model(app.state.context)
freeze_startup_heap()
