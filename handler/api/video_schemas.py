"""Request model of POST /v1/moderate/video (its response model is the video service's own report)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from handler.api.schemas import S3Reference, require_one_source
from handler.video.response import VideoFrame, VideoModerateResponse, VideoSegment

__all__ = ["VideoFrame", "VideoJSONRequest", "VideoModerateResponse", "VideoSegment"]


class VideoJSONRequest(BaseModel):
    """Exactly one video source, and optionally a policy name."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, description="Public http(s) URL of the video.")
    video_base64: str | None = Field(default=None, description="The video bytes, base64 (or a data: URL).")
    s3: S3Reference | None = Field(default=None, description="An S3 object the service may read.")
    policy: str | None = Field(default=None, description="Policy name; the default policy if omitted.")

    @model_validator(mode="after")
    def _exactly_one_source(self) -> VideoJSONRequest:
        require_one_source(self, ("url", "video_base64", "s3"))
        return self
