"""CLIP image moderation: a FastAPI app and a Lambda entry point sharing one moderation core."""

__version__ = "0.1.0"
