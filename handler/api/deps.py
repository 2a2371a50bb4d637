"""Dependencies shared by the routes (overridable in tests through `app.dependency_overrides`)."""

from __future__ import annotations

from handler.core.moderator import Moderator, get_moderator
from handler.media.judge import MediaLimits


def moderator() -> Moderator:
    return get_moderator()


def media_limits(mod: Moderator) -> MediaLimits:
    """The limits every judged medium gets, from the moderator's settings and its model's input size."""
    return MediaLimits.from_settings(mod.settings, mod.encoder.preprocess)
