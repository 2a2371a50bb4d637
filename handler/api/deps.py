"""Dependencies shared by the routes (overridable in tests through `app.dependency_overrides`)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from handler.core.moderator import Moderator, get_moderator
from handler.media.judge import MediaLimits


async def moderator() -> Moderator:
    """The process's moderator. Loaded at start-up (the app's lifespan, the Lambda's init), so this is a
    cache hit answered on the event loop; only a first load goes to a worker thread."""
    if get_moderator.cache_info().currsize:
        return get_moderator()
    return await run_in_threadpool(get_moderator)


def media_limits(mod: Moderator) -> MediaLimits:
    """The limits every judged medium gets, from the moderator's settings and its model's input size."""
    return MediaLimits.from_settings(mod.settings, mod.encoder.preprocess)
