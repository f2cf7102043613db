"""``cnnkit serve``: a FastAPI app on uvicorn with a JSON API and an offline web page."""
