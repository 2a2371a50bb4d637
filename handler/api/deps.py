"""Dependencies shared by the routes (overridable in tests through `app.dependency_overrides`)."""

from __future__ import annotations

from handler.core.moderator import Moderator, get_moderator


def moderator() -> Moderator:
    return get_moderator()
