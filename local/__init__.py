"""The local door: one FastAPI app over every function's router, run by uvicorn."""
