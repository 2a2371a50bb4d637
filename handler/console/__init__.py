"""The web console: static pages (no build step) served by the app itself, talking to the JSON API."""
