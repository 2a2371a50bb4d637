"""HTTP routes of the FastAPI app."""
