"""Request and response models of the HTTP API: what /docs shows."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from handler.core.policy import Action
from handler.core.scoring import Decision


class OriginalPayload(BaseModel):
    location: str | None = Field(description="The URL given, or null for an upload.")
    classifier: str = Field(description="The classifier used.")


class ClassifyResult(BaseModel):
    prediction: str = Field(description="The most probable class, or `unknown` below `threshold`.")
    label_probabilities: dict[str, float] = Field(description="Probability of each class; they sum to 1.")
    original_payload: OriginalPayload


class ClassifyResponse(BaseModel):
    result: ClassifyResult


class S3Reference(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bucket: str = Field(min_length=3, max_length=63, description="Bucket name.")
    key: str = Field(min_length=1, max_length=1024, description="Object key (not URL-encoded).")
    version_id: str | None = Field(default=None, description="A specific object version.")


def require_one_source(body: BaseModel, fields: tuple[str, ...]) -> None:
    """A JSON body names exactly one of its source fields."""
    given = [name for name in fields if getattr(body, name) is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of {', '.join(fields)} (got {', '.join(given) or 'none'})")


class ImageSourceJSON(BaseModel):
    """Exactly one image source."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, description="Public http(s) URL of the image.")
    image_base64: str | None = Field(default=None, description="The image bytes, base64 (or a data: URL).")
    s3: S3Reference | None = Field(default=None, description="An S3 object the service may read.")

    @model_validator(mode="after")
    def _exactly_one_source(self) -> ImageSourceJSON:
        require_one_source(self, ("url", "image_base64", "s3"))
        return self


class ModerateJSONRequest(ImageSourceJSON):
    """Exactly one image source, and optionally a policy name."""

    policy: str | None = Field(default=None, description="Policy name; the default policy if omitted.")


class BatchJSONRequest(BaseModel):
    """Several image sources judged by one policy in one batched forward pass."""

    model_config = ConfigDict(extra="forbid")

    items: list[ImageSourceJSON] = Field(
        min_length=1, description="The images, each with exactly one source."
    )
    policy: str | None = Field(default=None, description="Policy name; the default policy if omitted.")


class TopCategory(BaseModel):
    category: str = Field(description="The most probable category.")
    score: float = Field(description="Its probability.")


class ModerateResponse(BaseModel):
    verdict: Action = Field(description="Most severe action among flagged categories; allow if none.")
    flagged: list[str] = Field(description="Categories at or above their threshold, most probable first.")
    scores: dict[str, float] = Field(description="Probability of every category of the policy.")
    top: TopCategory
    policy: str = Field(description="Name of the policy applied.")
    model: str = Field(description="The CLIP checkpoint that judged the image.")
    elapsed_ms: float = Field(description="Server-side time to decode and judge, in milliseconds.")
    head_scores: dict[str, float] = Field(
        default_factory=dict, description="The policy's score heads (e.g. aesthetics 0-10); empty if none."
    )
    frames: int = Field(
        default=1,
        description="Frames judged: 1 for a still; each frame (up to VIDEO_MAX_FRAMES) of an animated GIF, "
        "WebP or PNG, a multi-page TIFF or an MPO, whose verdict is its most severe frame's.",
    )

    @classmethod
    def from_decision(
        cls, decision: Decision, model: str, elapsed_ms: float, frames: int = 1
    ) -> ModerateResponse:
        return cls(
            verdict=decision.verdict,
            flagged=decision.flagged,
            scores=decision.scores,
            top=TopCategory(category=decision.top, score=decision.top_score),
            policy=decision.policy.name,
            model=model,
            elapsed_ms=round(elapsed_ms, 2),
            head_scores=decision.head_scores,
            frames=frames,
        )


class HealthResponse(BaseModel):
    status: str
    model: str
    policies: list[str]


class BatchItemError(BaseModel):
    status: int = Field(description="The HTTP status this item alone would have had.")
    detail: str = Field(description="What was wrong with this item.")


class BatchItemResult(BaseModel):
    index: int = Field(description="Position of the item in the request.")
    source: str = Field(description="The file name, URL or S3 reference of the item.")
    result: ModerateResponse | None = Field(
        default=None, description="The verdict, when the item was judged."
    )
    error: BatchItemError | None = Field(default=None, description="Why the item was not judged.")


class BatchResponse(BaseModel):
    policy: str = Field(description="Name of the policy applied.")
    model: str = Field(description="The CLIP checkpoint that judged the images.")
    elapsed_ms: float = Field(description="Server-side time for the whole batch, in milliseconds.")
    results: list[BatchItemResult] = Field(description="One entry per item, in request order.")
