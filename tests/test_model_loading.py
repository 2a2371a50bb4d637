"""The real loading path: MODEL_DIR, clear start-up failures, preprocessing parity with transformers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from handler.core.model import load_encoder
from handler.core.moderator import Moderator
from handler.core.preprocess import to_pixel_values
from handler.exceptions import ConfigurationError
from handler.settings import Settings


def test_missing_model_dir_fails_with_one_sentence_saying_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="MODEL_DIR") as info:
        load_encoder(Settings(model_dir=tmp_path / "nothing-here"))
    assert "python -m handler bake" in str(info.value)


def test_no_model_dir_and_no_hub_fails_naming_both_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    with pytest.raises(ConfigurationError) as info:
        load_encoder(Settings(model_dir=None, model_id="openai/clip-vit-base-patch32"))
    message = str(info.value)
    assert "MODEL_DIR" in message
    assert "MODEL_ID" in message


def test_incomplete_checkpoint_is_a_configuration_error(tmp_path: Path, tiny_model_dir: Path) -> None:
    (tmp_path / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    with pytest.raises(ConfigurationError, match="could not be loaded"):
        load_encoder(Settings(model_dir=tmp_path))


@pytest.mark.slow
def test_serve_exits_with_the_message_when_the_model_is_missing(tmp_path: Path) -> None:
    env = {"MODEL_DIR": str(tmp_path / "missing"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "handler", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[1],
    )
    assert result.returncode == 2
    assert "MODEL_DIR" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_policy_file_stops_start_up_naming_the_field(tmp_path: Path, tiny_model_dir: Path) -> None:
    from handler.core.moderator import build_moderator

    bad = tmp_path / "p.yaml"
    bad.write_text(
        "name: x\ncategories:\n  - name: a\n    prompts: [p]\n    threshold: 7\n"
        "  - name: b\n    prompts: [q]\n"
    )
    with pytest.raises(ConfigurationError, match=r"categories\.0\.threshold"):
        build_moderator(Settings(model_dir=tiny_model_dir, moderation_policy=[bad]))


def test_preprocessing_matches_clip_image_processor(tiny_model_dir: Path) -> None:
    from transformers import CLIPImageProcessor

    from handler.core.preprocess import PreprocessConfig

    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in [(96, 128), (300, 80)]
    ]
    reference = CLIPImageProcessor.from_pretrained(tiny_model_dir)(images=images, return_tensors="pt")[
        "pixel_values"
    ]
    ours = to_pixel_values(images, PreprocessConfig.from_model_dir(tiny_model_dir))
    torch.testing.assert_close(
        torch.from_numpy(ours), reference, atol=2e-2, rtol=0
    )  # PIL vs numpy rounding of one step


def test_image_embeddings_match_the_full_transformers_path(
    moderator: Moderator, tiny_model_dir: Path
) -> None:
    from transformers import CLIPModel, CLIPProcessor

    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8))
    model = CLIPModel.from_pretrained(tiny_model_dir).eval()
    processor = CLIPProcessor.from_pretrained(tiny_model_dir)
    with torch.inference_mode():
        inputs = processor(text=["a", "b"], images=[image], return_tensors="pt", padding=True)
        reference = model(**inputs)
    expected_probs = reference.logits_per_image.softmax(dim=-1)[0]
    got = moderator.classify([image], ["a", "b"])[0].probabilities
    torch.testing.assert_close(torch.tensor([got["a"], got["b"]]), expected_probs, atol=1e-3, rtol=0)
    ours = moderator.embed([image])
    expected = torch.nn.functional.normalize(reference.image_embeds, dim=-1)
    torch.testing.assert_close(torch.from_numpy(ours), expected, atol=2e-3, rtol=0)
