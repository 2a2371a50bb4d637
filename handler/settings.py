"""All configuration, read once from the environment into one typed object."""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MiB = 1024 * 1024


class Settings(BaseSettings):
    """Every knob of the service. Names are the environment variables (case-insensitive)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # Model
    model_dir: Path | None = Field(
        default=None, description="Local transformers CLIP checkpoint directory (loaded offline)."
    )
    model_id: str = Field(
        default="openai/clip-vit-base-patch32",
        description="Checkpoint to bake, or to download into the Hugging Face cache when MODEL_DIR is unset.",
    )
    model_runtime: Literal["auto", "onnx", "transformers"] = Field(
        default="auto",
        description="auto = ONNX Runtime on a baked model directory, else transformers (a raw checkpoint).",
    )
    inference_precision: Literal["auto", "fp32", "int8", "int8-w7", "bf16"] = Field(
        default="auto",
        description="Image-tower precision. auto = int8 when the bake's int8 gate passed, else fp32; "
        "int8 (the tower made for this CPU: 8-bit weights, or 7-bit where its kernels would clip "
        "8-bit ones) needs a baked directory; int8-w7 the 7-bit tower on any CPU; bf16 the "
        "transformers runtime and a CPU with native bf16.",
    )
    inference_threads: int = Field(
        default=0,
        ge=0,
        validation_alias=AliasChoices("inference_threads", "torch_threads"),
        description="Intra-op threads of the forward pass; 0 = the CPUs this process may use (cgroup quota).",
    )
    text_cache_size: int = Field(
        default=256, ge=1, description="Label sets kept in the text-embedding cache."
    )

    # Policies
    moderation_policy: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Policy file(s), JSON or YAML, comma-separated; the first is the default policy.",
    )

    # Image input
    max_image_bytes: int = Field(default=10 * MiB, gt=0, description="Largest accepted image, in bytes.")
    max_image_pixels: int = Field(
        default=40_000_000, gt=0, description="Largest accepted width x height (decompression-bomb guard)."
    )
    max_batch_images: int = Field(default=32, ge=1, description="Most images in one batch request.")
    batch_time_limit_s: float = Field(
        default=20.0, gt=0, description="Time one batch request has to fetch and decode all its images."
    )
    batch_fetch_concurrency: int = Field(
        default=8, ge=1, description="Images of one batch fetched and decoded at the same time."
    )

    # URL fetching
    fetch_connect_timeout_s: float = Field(default=3.0, gt=0)
    fetch_read_timeout_s: float = Field(default=10.0, gt=0)
    fetch_total_timeout_s: float = Field(default=20.0, gt=0)
    fetch_max_redirects: int = Field(default=3, ge=0)
    fetch_allow_private: bool = Field(
        default=False, description="Allow fetching from private/loopback addresses (self-hosting only)."
    )
    fetch_allow_networks: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(
        default_factory=list,
        description="CIDRs allowed even though they are not public (comma-separated).",
    )

    # S3 actions
    quarantine_bucket: str | None = None
    quarantine_prefix: str = ""
    s3_io_workers: int = Field(
        default=10,
        ge=1,
        le=64,
        description=(
            "Objects of one event whose S3 calls run concurrently: at least the SQS batch size (10 in the "
            "template), so a batch is read in one wave of round trips; the S3 and DynamoDB clients keep as "
            "many connections."
        ),
    )
    decision_table: str | None = Field(
        default=None,
        description="DynamoDB table of decisions (the record idempotency reads). Unset: nothing recorded.",
    )
    api_s3_buckets: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Buckets the API's `s3` source may read (comma-separated); any other is a uniform 403.",
    )
    review_url_ttl_s: int = Field(
        default=300, ge=30, le=3600, description="Lifetime of the review queue's presigned thumbnail URLs."
    )
    max_video_deferrals: int = Field(
        default=20, ge=0, description="Times one SQS object may be re-queued for lack of invocation time."
    )
    max_object_bytes: int | None = Field(
        default=None,
        description="Largest S3 object moderated; unset: MAX_IMAGE_BYTES (images), MAX_VIDEO_BYTES (videos).",
    )

    # Video (POST /v1/moderate/video and video objects in S3)
    max_video_bytes: int = Field(default=200 * MiB, gt=0, description="Largest accepted video, in bytes.")
    video_sample_fps: float = Field(default=1.0, gt=0, description="Frames judged per second of video.")
    video_max_frames: int = Field(
        default=120, ge=1, description="Most frames judged per video; longer clips are sampled more sparsely."
    )
    video_max_duration_s: float = Field(default=600.0, gt=0, description="Longest accepted video, seconds.")
    video_batch_size: int = Field(default=16, ge=1, description="Frames per forward pass.")
    video_early_exit: bool = Field(default=True, description="Stop decoding once a quarantine is clear.")
    video_early_exit_margin: float = Field(
        default=0.1, ge=0.0, description="How far above its threshold a quarantine score must be to stop."
    )
    video_smoothing_k: int = Field(default=1, ge=1, description="Flag only k of n consecutive samples...")
    video_smoothing_n: int = Field(default=1, ge=1, description="...(1 of 1 = no smoothing).")
    video_time_limit_s: float | None = Field(
        default=None, gt=0, description="Most seconds one video may take; unset: FUNCTION_TIMEOUT_S - 10."
    )
    video_sampling_key: str | None = Field(
        default=None,
        description="Secret that seeds where frames are sampled (per object); unset: random per process.",
    )
    function_timeout_s: float = Field(
        default=30.0, gt=0, description="The Lambda function's timeout (the template sets it)."
    )

    @field_validator("video_smoothing_n")
    @classmethod
    def _smoothing_window(cls, n: int, info: ValidationInfo) -> int:
        k = info.data.get("video_smoothing_k", 1)
        if k > n:
            raise ValueError(f"VIDEO_SMOOTHING_K ({k}) must not exceed VIDEO_SMOOTHING_N ({n})")
        return n

    # Feedback (POST /v1/feedback): JSON lines to S3 when FEEDBACK_BUCKET is set, else to FEEDBACK_DIR
    feedback_bucket: str | None = Field(default=None, description="Bucket for feedback records.")
    feedback_prefix: str = Field(default="feedback/", description="Key prefix of feedback records.")
    feedback_dir: Path = Field(default=Path("feedback"), description="Local feedback directory.")

    # Operations
    metrics: Literal["auto", "on", "off"] = Field(
        default="auto", description="CloudWatch EMF metrics on stdout; auto = on inside Lambda only."
    )
    metrics_namespace: str = Field(default="ClipModeration", min_length=1, max_length=255)
    event_bus_name: str | None = Field(
        default=None, description="EventBridge bus for review/quarantine verdict events; unset: none sent."
    )

    # Serving
    port: int = Field(default=8000, ge=1, le=65535)
    host: str = "127.0.0.1"
    log_level: str = "INFO"

    @field_validator("moderation_policy", mode="before")
    @classmethod
    def _split_policies(cls, value: object) -> object:
        if isinstance(value, str):
            return [Path(p.strip()) for p in value.split(",") if p.strip()]
        return value

    @field_validator("api_s3_buckets", mode="before")
    @classmethod
    def _split_buckets(cls, value: object) -> object:
        if isinstance(value, str):
            return [b.strip() for b in value.split(",") if b.strip()]
        return value

    @field_validator(
        "feedback_bucket", "decision_table", "quarantine_bucket", "event_bus_name", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("fetch_allow_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [ip_network(p.strip(), strict=False) for p in value.split(",") if p.strip()]
        return value

    @property
    def object_size_limit(self) -> int:
        return self.max_object_bytes if self.max_object_bytes is not None else self.max_image_bytes


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; tests call `get_settings.cache_clear()` after changing the environment."""
    return Settings()
