"""Policies: validation errors that name the field, JSON and YAML, the built-in default."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from handler.core.policy import Action, PolicySet, default_policy, load_policy_file
from handler.core.scoring import judge
from handler.core.text_cache import TextEmbeddingCache
from handler.exceptions import ConfigurationError

YAML_POLICY = """
name: mine
categories:
  - name: nsfw
    prompts: ["an explicit photo", "pornographic content"]
    threshold: 0.4
    action: quarantine
  - name: safe
    prompts: ["a safe photo"]
    safe: true
"""


def test_yaml_and_json_policies_load(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(YAML_POLICY)
    policy = load_policy_file(tmp_path / "p.yaml")
    assert policy.name == "mine"
    assert policy.categories[0].action is Action.quarantine
    assert policy.categories[1].action is Action.review  # default action; never used for a safe class
    (tmp_path / "p.json").write_text(json.dumps(policy.model_dump(mode="json")))
    assert load_policy_file(tmp_path / "p.json") == policy


@pytest.mark.parametrize(
    ("mutation", "field"),
    [
        (lambda p: p["categories"][0].update(threshold=1.5), "categories.0.threshold"),
        (lambda p: p["categories"][0].update(action="delete"), "categories.0.action"),
        (lambda p: p["categories"][0].update(prompts=[]), "categories.0.prompts"),
        (lambda p: p["categories"][0].update(prompts=["  "]), "categories.0.prompts"),
        (lambda p: p["categories"][0].update(colour="red"), "categories.0.colour"),
        (lambda p: p.pop("name"), "name"),
        (lambda p: p.update(categories=p["categories"][:1]), "categories"),
        (lambda p: p["categories"][1].update(name="nsfw"), "unique"),
    ],
)
def test_invalid_policy_stops_with_a_message_naming_the_field(tmp_path: Path, mutation, field: str) -> None:  # type: ignore[no-untyped-def]
    import yaml

    data = yaml.safe_load(YAML_POLICY)
    mutation(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigurationError) as info:
        load_policy_file(path)
    assert field in str(info.value)
    assert str(path) in str(info.value)


def test_unreadable_and_unparsable_files_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="Cannot read"):
        load_policy_file(tmp_path / "missing.yaml")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ConfigurationError, match="not valid JSON/YAML"):
        load_policy_file(tmp_path / "broken.json")


def test_builtin_default_policy_covers_the_required_harms() -> None:
    policy = default_policy()
    names = {c.name for c in policy.categories}
    assert {"sexual", "gore", "violence", "offensive-gesture", "hate-symbol", "safe"} <= names
    safe_lookalikes = {c.name for c in policy.categories if c.safe}
    assert {"swimwear", "medical", "art"} <= safe_lookalikes
    assert all(len(c.prompts) >= 2 for c in policy.categories)


def test_policy_set_first_file_is_default_and_builtin_stays_available(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(YAML_POLICY)
    policies = PolicySet.from_paths([tmp_path / "p.yaml"])
    assert policies.default.name == "mine"
    assert policies.names == ["mine", "default"]
    assert policies.get("nope") is None


def test_fingerprint_changes_with_anything_that_changes_a_verdict(tmp_path: Path) -> None:
    policy = default_policy()
    changed = policy.model_copy(
        update={
            "categories": (policy.categories[0].model_copy(update={"threshold": 0.9}), *policy.categories[1:])
        }
    )
    assert policy.fingerprint != changed.fingerprint
    assert policy.policy_id == f"default@{policy.fingerprint}"


def test_verdict_is_most_severe_flagged_action_and_safe_is_never_flagged() -> None:
    from handler.core.policy import Policy

    policy = Policy.model_validate(
        {
            "name": "t",
            "categories": [
                {"name": "q", "prompts": ["a"], "threshold": 0.3, "action": "quarantine"},
                {"name": "r", "prompts": ["b"], "threshold": 0.2, "action": "review"},
                {"name": "s", "prompts": ["c"], "safe": True, "threshold": 0.0},
            ],
        }
    )
    assert judge(policy, np.array([0.3, 0.2, 0.5])).verdict is Action.quarantine  # at threshold flags
    assert judge(policy, np.array([0.29, 0.2, 0.51])).verdict is Action.review
    decision = judge(policy, np.array([0.1, 0.1, 0.8]))
    assert (decision.verdict, decision.flagged, decision.top) == (Action.allow, [], "s")


def test_prompt_ensemble_is_the_normalised_mean_of_normalised_prompts() -> None:
    vectors = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0]), "c": np.array([1.0, 1.0])}

    def encode(texts):  # type: ignore[no-untyped-def]
        stacked = np.stack([vectors[t] for t in texts])
        return stacked / np.linalg.norm(stacked, axis=-1, keepdims=True)

    from handler.core.policy import Policy

    policy = Policy.model_validate(
        {"name": "e", "categories": [{"name": "x", "prompts": ["a", "b"]}, {"name": "y", "prompts": ["c"]}]}
    )
    matrix = TextEmbeddingCache(encode).policy(policy)
    np.testing.assert_allclose(matrix[0], [2**-0.5, 2**-0.5], rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=-1), [1.0, 1.0], rtol=1e-6)
