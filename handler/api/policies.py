"""GET /v1/policies: the policies this process serves, as the console (and any client) needs to show them.

Head files are named by the head's own name, never by their path on the server.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from handler.api.deps import moderator
from handler.core.moderator import Moderator
from handler.core.policy import Action, Category, Policy, ScoreHead

router = APIRouter(tags=["policies"])


class CategoryInfo(BaseModel):
    name: str
    source: Literal["prompts", "head"] = Field(description="Scored by a prompt ensemble or a trained head.")
    prompts: list[str] = Field(description="The prompt ensemble (empty for a head category).")
    head: str | None = Field(description="The classifier head's name, for a head category.")
    head_label: str | None = Field(description="The head's label whose probability is this category's.")
    threshold: float = Field(description="Flagged at or above this probability.")
    action: Action = Field(description="What a flag means.")
    safe: bool = Field(description="The benign class: never flagged.")


class ScoreInfo(BaseModel):
    name: str = Field(description="The score's name in `head_scores` (e.g. aesthetics).")
    head: str = Field(description="The regressor head's name.")
    score_range: tuple[float, float] | None = Field(description="The head's output range, when it has one.")


class PolicyInfo(BaseModel):
    name: str
    description: str
    policy_id: str = Field(description="name@fingerprint: changes whenever anything that judges changes.")
    default: bool = Field(description="The policy used when a request names none.")
    categories: list[CategoryInfo]
    scores: list[ScoreInfo] = Field(description="Score heads returned beside the verdict.")


class PoliciesResponse(BaseModel):
    default: str = Field(description="Name of the default policy.")
    model: str = Field(description="The CLIP checkpoint serving these policies.")
    policies: list[PolicyInfo]


@router.get("/v1/policies", response_model=PoliciesResponse, summary="The served moderation policies")
def list_policies(mod: Annotated[Moderator, Depends(moderator)]) -> PoliciesResponse:
    default = mod.policies.default
    return PoliciesResponse(
        default=default.name,
        model=mod.model_id,
        policies=[_policy_info(mod, policy, policy.name == default.name) for policy in mod.policies],
    )


def _policy_info(mod: Moderator, policy: Policy, default: bool) -> PolicyInfo:
    return PolicyInfo(
        name=policy.name,
        description=policy.description,
        policy_id=policy.policy_id,
        default=default,
        categories=[_category_info(mod, c) for c in policy.categories],
        scores=[_score_info(mod, s) for s in policy.scores],
    )


def _category_info(mod: Moderator, category: Category) -> CategoryInfo:
    return CategoryInfo(
        name=category.name,
        source="prompts" if category.head is None else "head",
        prompts=list(category.prompts),
        head=None if category.head is None else mod.heads.head(category.head).name,
        head_label=category.head_label,
        threshold=category.threshold,
        action=category.action,
        safe=category.safe,
    )


def _score_info(mod: Moderator, score: ScoreHead) -> ScoreInfo:
    head = mod.heads.head(score.head)
    return ScoreInfo(name=score.name, head=head.name, score_range=head.meta.score_range)
