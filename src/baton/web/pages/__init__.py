"""The page groups of the web app, one module (an ``APIRouter``) each."""
