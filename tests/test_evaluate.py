"""`python -m handler evaluate` on a synthetic dataset and the tiny checkpoint: report, plots, calibration."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from PIL import Image
from sklearn import metrics as skm

from handler.cli import main
from handler.core.moderator import Moderator
from handler.core.policy import load_policy_file
from tests.synthetic import snapshot, solid_vs_stripes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return solid_vs_stripes(tmp_path_factory.mktemp("eval") / "data", per_class=6)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["evaluate", *argv, "--no-progress"])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_report_plots_and_metrics_and_no_user_file_touched(
    moderator: Moderator, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(dataset)
    out = tmp_path / "report"

    status, stdout, stderr = run(capsys, str(dataset), "--out", str(out), "--threshold", "0.5")

    assert status == 0, stderr
    summary = json.loads(stdout)
    assert summary["images"] == 12
    for name in ("report.json", "report.md", "confusion_matrix.png", "roc.png", "precision_recall.png"):
        assert (out / name).is_file(), name
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == PNG_SIGNATURE
        with Image.open(png) as image:
            image.verify()
            assert image.format == "PNG"
            assert min(image.size) > 100
    assert snapshot(dataset) == before, "evaluate must not move, rename, change or add files in the dataset"

    report = json.loads((out / "report.json").read_text())
    assert report["mode"]["classes"] == ["solid", "stripes"], "zero-shot classes default to the labels"
    assert report["dataset"]["labels"] == {"solid": 6, "stripes": 6}
    assert any("can never give 'unknown'" in w for w in report["warnings"])
    assert "can never give 'unknown'" in stderr
    assert report["metrics"]["unknown"] == 0
    assert {"mean_ms_per_image", "p95_ms_per_image"} <= report["timing"].keys()
    assert report["timing"]["p95_ms_per_image"] >= report["timing"]["mean_ms_per_image"] * 0.5
    assert report["memory"]["peak_rss_mib"] > 50
    assert report["model"]["fingerprint"] == moderator.backbone_fingerprint
    point = report["curves"]["operating_point"]
    assert point["target"] == "recall >= 0.95"
    assert point["recall"] >= 0.95

    # Every image not listed as misclassified was right: rebuild the predictions and check with sklearn.
    wrong = {row["ref"]: row["predicted"] for row in report["misclassified"]}
    refs = sorted(str(p) for p in dataset.rglob("*.png"))
    y_true = [Path(ref).parent.name for ref in refs]
    y_pred = [wrong.get(ref, label) for ref, label in zip(refs, y_true, strict=True)]
    m = report["metrics"]
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert m["macro"]["f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert (
        m["confusion_matrix"]["counts"]
        == skm.confusion_matrix(y_true, y_pred, labels=["solid", "stripes"]).tolist()
    )

    markdown = (out / "report.md").read_text()
    assert "| accuracy | balanced accuracy |" in markdown
    assert "![confusion matrix](confusion_matrix.png)" in markdown


def test_one_folder_and_unknown_threshold_traps_are_flagged(
    moderator: Moderator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = solid_vs_stripes(tmp_path / "data", per_class=3)
    only = tmp_path / "only-solid"
    (only / "solid").mkdir(parents=True)
    for png in (data / "solid").iterdir():
        (only / "solid" / png.name).write_bytes(png.read_bytes())

    status, _, stderr = run(
        capsys, str(only), "--classes", "solid, stripes", "--threshold", "0.9", "--out", str(tmp_path / "r")
    )

    assert status == 0
    assert "only one true label (solid): its precision is trivially 1.0" in stderr
    assert "can never" not in stderr, "0.9 > 1/2 can trigger"
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["curves"]["available"] is False


def test_bad_requests_fail_with_one_sentence(
    moderator: Moderator, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, stderr = run(capsys, str(dataset), "--classes", "cat, dog", "--out", str(tmp_path / "r"))
    assert status == 2
    assert "dataset labels ['solid', 'stripes'] are not classes" in stderr

    status, _, stderr = run(capsys, str(dataset), "--out", str(dataset / "report"))
    assert status == 2
    assert "inside the dataset" in stderr
    assert not (dataset / "report").exists()

    status, _, stderr = run(capsys, str(dataset), "--write-policy", str(tmp_path / "p.yaml"))
    assert status == 2
    assert "--write-policy needs --policy" in stderr


def test_csv_dataset_and_class_map(moderator: Moderator, dataset: Path, tmp_path: Path) -> None:
    from handler.evaluation.evaluate import evaluate
    from handler.evaluation.options import EvaluateOptions

    csv_file = tmp_path / "labels.csv"
    rows = [f"{os.path.relpath(p, tmp_path)},{p.parent.name}" for p in dataset.rglob("*.png")]  # relative
    csv_file.write_text("path,label\n" + "\n".join(rows) + "\n")
    options = EvaluateOptions(
        dataset=csv_file,
        out=tmp_path / "r",
        classes=["a plain colour", "a striped pattern"],
        mapping={"a plain colour": "solid", "a striped pattern": "stripes"},
        progress=False,
    )

    report = evaluate(moderator, options)

    assert report["metrics"]["images"] == 12
    assert report["metrics"]["confusion_matrix"]["true"] == ["solid", "stripes"]
    assert report["mode"]["map"] == {"a plain colour": "solid", "a striped pattern": "stripes"}


def test_policy_calibration_writes_a_new_policy_file(
    moderator: Moderator, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy_file = tmp_path / "patterns.yaml"
    policy_file.write_text(
        yaml.safe_dump(
            {
                "name": "patterns",
                "categories": [
                    {"name": "solid", "prompts": ["a plain colour"], "threshold": 0.99, "action": "review"},
                    {"name": "stripes", "prompts": ["a striped pattern"], "safe": True},
                ],
            }
        )
    )
    original = policy_file.read_text()
    new_file = tmp_path / "calibrated" / "patterns.yaml"

    status, stdout, stderr = run(
        capsys,
        str(dataset),
        "--policy",
        str(policy_file),
        "--target-recall",
        "1.0",
        "--write-policy",
        str(new_file),
        "--out",
        str(tmp_path / "r"),
    )

    assert status == 0, stderr
    assert json.loads(stdout)["policy_file"] == str(new_file)
    assert policy_file.read_text() == original
    calibrated = load_policy_file(new_file)
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    [change] = report["calibration"]["categories"]
    assert change["recall"] == 1.0
    assert calibrated.categories[0].threshold == change["new"] < 0.99
    assert "calibrated" in calibrated.description
    # Every solid image is flagged at the new threshold: the target recall holds.
    again = tmp_path / "again"
    status, _, _ = run(capsys, str(dataset), "--policy", str(new_file), "--out", str(again))
    per_class = json.loads((again / "report.json").read_text())["metrics"]["per_class"]
    assert per_class["solid"]["recall"] == 1.0

    status, _, stderr = run(
        capsys,
        str(dataset),
        "--policy",
        str(policy_file),
        "--write-policy",
        str(new_file),
        "--out",
        str(again),
    )
    assert status == 2
    assert "exists" in stderr
