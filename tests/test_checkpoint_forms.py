"""Every form a transformers CLIP checkpoint is saved in serves and bakes, with the same answers.

One random-weight model, saved by the test as safetensors / pytorch_model.bin / sharded, with the fast
(tokenizer.json) or the slow (vocab.json + merges.txt) tokenizer files. A pickle that carries code is
refused without running it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handler.core.fingerprint import backbone_fingerprint, compute_fingerprint
from handler.core.model import load_encoder
from handler.core.moderator import Moderator, build_moderator
from handler.exceptions import ConfigurationError
from handler.settings import Settings
from handler.tools.bake import bake

FORMS = [
    "safetensors-fast",
    "safetensors-slow",
    "bin-fast",
    "bin-slow",
    "sharded-safetensors-slow",
    "sharded-bin-fast",
]
LABELS = ["a red square", "a photo of a dog", "nsfw"]


def save_form(source: Path, out: Path, form: str) -> Path:
    """The model in `source` saved as transformers saves it in the given form, and nothing else."""
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer, CLIPTokenizerFast

    *weights, tokenizer = form.split("-")
    model = CLIPModel.from_pretrained(source)
    shard = {"max_shard_size": "300KB"} if weights[0] == "sharded" else {}
    model.save_pretrained(out, safe_serialization=weights[-1] == "safetensors", **shard)
    CLIPImageProcessor.from_pretrained(source).save_pretrained(out)
    if tokenizer == "slow":
        CLIPTokenizer.from_pretrained(source).save_pretrained(out)
        assert not (out / "tokenizer.json").exists()
    else:
        CLIPTokenizerFast.from_pretrained(source).save_pretrained(out)
        for name in ("vocab.json", "merges.txt"):
            (out / name).unlink(missing_ok=True)
    return out


@pytest.fixture(scope="module")
def forms(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("forms")
    return {form: save_form(tiny_model_dir, root / form, form) for form in FORMS}


def answers(mod: Moderator) -> tuple[np.ndarray, dict[str, float], str]:
    rng = np.random.default_rng(5)
    images = [Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)) for _ in range(3)]
    probabilities = np.array([list(c.probabilities.values()) for c in mod.classify(images, LABELS)])
    decision = mod.moderate(images[:1], mod.policies.default)[0]
    return probabilities, decision.scores, decision.verdict.value


def test_the_forms_are_what_transformers_writes_and_loads(forms: dict[str, Path]) -> None:
    from transformers import CLIPModel, CLIPProcessor

    layout = {form: sorted(p.name for p in path.iterdir()) for form, path in forms.items()}
    assert "pytorch_model.bin" in layout["bin-slow"]
    assert "tokenizer.json" not in layout["bin-slow"]
    assert "model.safetensors.index.json" in layout["sharded-safetensors-slow"]
    assert "pytorch_model.bin.index.json" in layout["sharded-bin-fast"]
    assert "vocab.json" not in layout["safetensors-fast"]
    for path in forms.values():
        CLIPModel.from_pretrained(path)
        CLIPProcessor.from_pretrained(path)


@pytest.mark.parametrize("form", FORMS)
def test_every_form_serves_the_same_answers(form: str, forms: dict[str, Path], moderator: Moderator) -> None:
    mod = build_moderator(Settings(model_dir=forms[form]))
    expected_probabilities, expected_scores, expected_verdict = answers(moderator)
    probabilities, scores, verdict = answers(mod)
    np.testing.assert_allclose(probabilities, expected_probabilities, atol=1e-6)
    assert scores == pytest.approx(expected_scores, abs=1e-6)
    assert verdict == expected_verdict
    assert mod.backbone_fingerprint == moderator.backbone_fingerprint


@pytest.mark.slow
@pytest.mark.parametrize("form", ["bin-slow", "sharded-safetensors-slow"])
def test_every_form_bakes_to_the_same_model(
    form: str, forms: dict[str, Path], baked: Path, tmp_path: Path
) -> None:
    out = tmp_path / "baked"
    summary = bake(out, f"test/{form}", from_dir=forms[form])
    assert summary["backbone_fingerprint"] == backbone_fingerprint(baked)
    assert not (out / "pytorch_model.bin").exists()
    ours = build_moderator(Settings(model_dir=out))
    reference = build_moderator(Settings(model_dir=baked))
    assert ours.encoder.precision is reference.encoder.precision
    probabilities, scores, verdict = answers(ours)
    expected_probabilities, expected_scores, expected_verdict = answers(reference)
    np.testing.assert_allclose(probabilities, expected_probabilities, atol=1e-6)
    assert scores == pytest.approx(expected_scores, abs=1e-6)
    assert verdict == expected_verdict


class _RunsCode:
    """Unpickling this would touch a file: what a hostile checkpoint would do with os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def test_a_pickle_that_carries_code_is_refused_without_running_it(
    forms: dict[str, Path], tmp_path: Path
) -> None:
    import torch

    hostile = tmp_path / "hostile"
    shutil.copytree(forms["bin-slow"], hostile)
    marker = tmp_path / "code-ran"
    state = torch.load(hostile / "pytorch_model.bin", weights_only=True)
    torch.save({**state, "payload": _RunsCode(marker)}, hostile / "pytorch_model.bin")

    with pytest.raises(ConfigurationError, match="not a plain tensor checkpoint"):
        load_encoder(Settings(model_dir=hostile))
    with pytest.raises(ConfigurationError, match="not a plain tensor checkpoint"):
        compute_fingerprint(hostile)
    with pytest.raises(ConfigurationError, match="not a plain tensor checkpoint"):
        bake(tmp_path / "out", "test/hostile", from_dir=hostile)
    assert not marker.exists(), "unpickling ran the checkpoint's code"


def test_a_shard_index_cannot_name_files_outside_the_checkpoint(
    forms: dict[str, Path], tmp_path: Path
) -> None:
    outside = tmp_path / "outside.safetensors"
    sharded = tmp_path / "sharded"
    shutil.copytree(forms["sharded-safetensors-slow"], sharded)
    index_path = sharded / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    shard = next(iter(index["weight_map"].values()))
    shutil.copyfile(sharded / shard, outside)
    (sharded / shard).unlink()
    index["weight_map"] = {name: "../outside.safetensors" for name in index["weight_map"]}
    index_path.write_text(json.dumps(index))
    with pytest.raises(ConfigurationError, match=r"shards that are missing: outside\.safetensors"):
        load_encoder(Settings(model_dir=sharded))


def test_a_checkpoint_without_any_tokenizer_files_says_which_files_it_needs(
    forms: dict[str, Path], tmp_path: Path
) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(forms["safetensors-fast"], bare)
    (bare / "tokenizer.json").unlink()
    with pytest.raises(ConfigurationError, match=r"vocab\.json and merges\.txt"):
        load_encoder(Settings(model_dir=bare))
    with pytest.raises(ConfigurationError, match=r"vocab\.json \+ merges\.txt"):
        bake(tmp_path / "out", "test/bare", from_dir=bare)
