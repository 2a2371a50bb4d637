"""A judged video as the API answers it and the `video` command prints it (one shape for both)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from handler.core.policy import Action
from handler.video.verdict import FrameScore, Segment, VideoVerdict


class VideoSegment(BaseModel):
    start_s: float = Field(description="Time of the first sampled frame flagged for the category.")
    end_s: float = Field(description="Time of the next sample after the last flagged one, or the clip's end.")
    category: str = Field(description="The flagged category.")
    peak_score: float = Field(description="Its highest probability within the segment.")
    action: Action = Field(description="The category's action in the policy.")

    @classmethod
    def from_segment(cls, segment: Segment) -> VideoSegment:
        return cls(
            start_s=round(segment.start_s, 3),
            end_s=round(segment.end_s, 3),
            category=segment.category,
            peak_score=round(segment.peak_score, 4),
            action=segment.action,
        )


class VideoFrame(BaseModel):
    time_s: float = Field(description="Where the sampled frame sits in the video, in seconds.")
    scores: dict[str, float] = Field(description="Probability of every category of the policy.")
    flagged: list[str] = Field(description="Categories at or above their threshold on this frame alone.")

    @classmethod
    def from_frame(cls, frame: FrameScore) -> VideoFrame:
        return cls(
            time_s=round(frame.time_s, 3),
            scores={name: round(score, 4) for name, score in frame.scores.items()},
            flagged=sorted(frame.flagged),
        )


class VideoModerateResponse(BaseModel):
    verdict: Action = Field(description="Most severe action among the segments; allow if there is none.")
    segments: list[VideoSegment] = Field(description="Flagged stretches of the video, in time order.")
    frames_scored: int = Field(description="Sampled frames that went through the model.")
    frames: list[VideoFrame] = Field(description="Each sampled frame's scores, in time order (the timeline).")
    duration_s: float = Field(description="Length of the video stream, in seconds.")
    elapsed_ms: float = Field(description="Server-side time to read, decode and judge, in milliseconds.")
    early_exit: bool = Field(description="True when judging stopped at a clear quarantine-level frame.")
    policy: str = Field(description="Name of the policy applied.")
    model: str = Field(description="The CLIP checkpoint that judged the frames.")

    @classmethod
    def from_verdict(cls, verdict: VideoVerdict, model: str, elapsed_ms: float) -> VideoModerateResponse:
        return cls(
            verdict=verdict.verdict,
            segments=[VideoSegment.from_segment(s) for s in verdict.segments],
            frames_scored=len(verdict.frames),
            frames=[VideoFrame.from_frame(f) for f in verdict.frames],
            duration_s=round(verdict.duration_s, 3),
            elapsed_ms=round(elapsed_ms, 2),
            early_exit=verdict.early_exit,
            policy=verdict.policy.name,
            model=model,
        )
