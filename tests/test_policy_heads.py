"""The policy schema's head extension: validation, paths relative to the file, unchanged fingerprints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from handler.core.policy import default_policy, load_policy_file, parse_policy
from handler.exceptions import ConfigurationError

SAFE = {"name": "fine", "prompts": ["a fine thing"], "safe": True}
DULL = {"name": "meh", "prompts": ["a dull thing"]}


def policy(*categories: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "p", "categories": list(categories), **extra}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            policy({"name": "x", "prompts": ["a"], "head": "h.safetensors", "head_label": "x"}, SAFE, DULL),
            "exactly one",
        ),
        (policy({"name": "x"}, SAFE, DULL), "exactly one of `prompts` or `head`"),
        (policy({"name": "x", "head": "h.safetensors"}, SAFE, DULL), "go together"),
        (policy({"name": "x", "head": "h.safetensors", "head_label": "x"}, SAFE), "none or at least two"),
        (policy(SAFE, DULL, scores=[{"name": "verdict", "head": "a.safetensors"}]), "not one of"),
        (policy(SAFE, DULL, scores=[{"name": "a", "head": "a"}, {"name": "a", "head": "b"}]), "unique"),
    ],
)
def test_invalid_head_policies_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_policy(data, "test")


def test_heads_only_and_mixed_policies_are_valid(tmp_path: Path) -> None:
    heads_only = policy(
        {"name": "bad", "head": "h.safetensors", "head_label": "bad", "action": "quarantine"},
        {"name": "good", "head": "h.safetensors", "head_label": "good", "safe": True},
    )
    assert len(parse_policy(heads_only, "test").categories) == 2
    path = tmp_path / "sub" / "mixed.yaml"
    path.parent.mkdir()
    path.write_text(
        "name: mixed\ncategories:\n"
        "  - {name: probe, head: ../heads/nsfw.safetensors, head_label: nsfw}\n"
        "  - {name: meh, prompts: [a dull thing]}\n"
        "  - {name: fine, prompts: [a fine thing], safe: true}\n"
        "scores:\n  - {name: aesthetics, head: /abs/aesthetics.safetensors}\n"
    )
    loaded = load_policy_file(path)
    assert loaded.categories[0].head == str(path.parent / "../heads/nsfw.safetensors")
    assert loaded.scores[0].head == "/abs/aesthetics.safetensors"


def test_prompt_only_policies_keep_their_fingerprint() -> None:
    """The new fields stay out of the dump the fingerprint hashes: S3 tags of judged objects still match."""
    builtin = default_policy()
    dumped = builtin.model_dump(mode="json")
    assert "scores" not in dumped
    assert all(set(c) == {"name", "prompts", "threshold", "action", "safe"} for c in dumped["categories"])
