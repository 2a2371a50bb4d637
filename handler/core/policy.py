"""Moderation policies: categories described in words, validated, loaded from JSON or YAML."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from handler.exceptions import ConfigurationError


class Action(StrEnum):
    allow = "allow"
    review = "review"
    quarantine = "quarantine"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Action.allow: 0, Action.review: 1, Action.quarantine: 2}
#: Score names that would collide with the S3 moderation tags (`moderation-<name>`).
RESERVED_SCORE_NAMES = frozenset({"verdict", "policy", "top", "score", "reason"})


class Category(BaseModel):
    """One class of content, described by a prompt ensemble."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    prompts: tuple[str, ...] = Field(
        default=(),
        min_length=1,
        exclude_if=lambda v: not v,
        description="Texts whose mean embedding is the class (or give `head`).",
    )
    threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="Flag at or above this probability.")
    action: Action = Field(default=Action.review, description="What a flag means: allow, review, quarantine.")
    safe: bool = Field(default=False, description="The benign class: never flagged.")
    head: str | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="A classifier head file (relative to the policy file) scoring this category instead of "
        "prompts: its probability of `head_label`.",
    )
    head_label: str | None = Field(default=None, exclude_if=lambda v: v is None)

    @field_validator("prompts")
    @classmethod
    def _prompts_not_blank(cls, prompts: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(p.strip() for p in prompts)
        if any(not p for p in cleaned):
            raise ValueError("prompts must not be empty strings")
        return cleaned

    @field_validator("head")
    @classmethod
    def _head_beside_policy(cls, head: str | None, info: ValidationInfo) -> str | None:
        return resolve_head_path(head, info)

    @model_validator(mode="after")
    def _prompts_or_head(self) -> Category:
        if bool(self.prompts) == (self.head is not None):
            raise ValueError(f"category {self.name!r}: give exactly one of `prompts` or `head`")
        if (self.head is None) != (self.head_label is None):
            raise ValueError(f"category {self.name!r}: `head` and `head_label` go together")
        return self


def resolve_head_path(head: str | None, info: ValidationInfo) -> str | None:
    """Head paths in a policy file are relative to that file (absolute once loaded)."""
    base = (info.context or {}).get("base_dir")
    if head is None or base is None:
        return head
    return str((Path(base) / head).absolute())


class ScoreHead(BaseModel):
    """A score returned beside the verdict (e.g. aesthetics 0-10), from a regressor head."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=48, pattern=r"^[a-z0-9_.-]+$")
    head: str = Field(min_length=1, description="A regressor head file, relative to the policy file.")

    @field_validator("head")
    @classmethod
    def _head_beside_policy(cls, head: str, info: ValidationInfo) -> str:
        return resolve_head_path(head, info) or head


class Policy(BaseModel):
    """A named set of categories; probabilities are softmaxed over all of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    categories: tuple[Category, ...] = Field(min_length=2)
    scores: tuple[ScoreHead, ...] = Field(
        default=(), exclude_if=lambda v: not v, description="Score heads returned beside the verdict."
    )

    @model_validator(mode="after")
    def _check_categories(self) -> Policy:
        names = [c.name for c in self.categories]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"category names must be unique; repeated: {', '.join(duplicates)}")
        if sum(1 for c in self.categories if c.prompts) == 1:
            raise ValueError("prompt categories are softmaxed together: give none or at least two")
        score_names = [s.name for s in self.scores]
        if len(set(score_names)) != len(score_names) or set(score_names) & RESERVED_SCORE_NAMES:
            raise ValueError(
                f"score names must be unique and not one of {', '.join(sorted(RESERVED_SCORE_NAMES))}"
            )
        return self

    @property
    def fingerprint(self) -> str:
        """Short hash of everything that changes a verdict; tagged on S3 objects for idempotency."""
        canonical = json.dumps(self.model_dump(mode="json", exclude={"description"}), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def policy_id(self) -> str:
        return f"{self.name}@{self.fingerprint}"


def parse_policy(data: Any, source: str, base_dir: Path | None = None) -> Policy:
    try:
        return Policy.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"Invalid moderation policy in {source}: {problems}") from exc


def load_policy_file(path: Path) -> Policy:
    """Read a policy from a .json, .yaml or .yml file; errors name the file and the field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"Cannot read MODERATION_POLICY file {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"MODERATION_POLICY file {path} is not valid JSON/YAML: {exc}") from exc
    return parse_policy(data, str(path), base_dir=path.parent)


def default_policy() -> Policy:
    text = resources.files("handler").joinpath("default_policy.yaml").read_text(encoding="utf-8")
    return parse_policy(yaml.safe_load(text), "the built-in default policy")


class PolicySet:
    """The policies a process serves: the configured ones (first = default) plus the built-in one."""

    def __init__(self, policies: list[Policy]) -> None:
        if not policies:
            raise ConfigurationError("At least one moderation policy is needed.")
        self.default = policies[0]
        self._by_name: dict[str, Policy] = {}
        for policy in policies:
            self._by_name.setdefault(policy.name, policy)

    @classmethod
    def from_paths(cls, paths: list[Path]) -> PolicySet:
        return cls([*(load_policy_file(p) for p in paths), default_policy()])

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def __iter__(self) -> Iterator[Policy]:
        return iter(self._by_name.values())

    def get(self, name: str | None) -> Policy | None:
        return self.default if name is None else self._by_name.get(name)
