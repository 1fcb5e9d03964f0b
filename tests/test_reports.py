"""The run report a user opens after evaluation (report.html / report.md) and the case pictures it shows."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from monai_app.errors import UserInputError
from monai_app.engine.handlers import CaseSnapshots
from monai_app.visualize import REGION_COLOURS, label_panel, orthogonal_panel
from monai_app.reports import write_report

CASES = ["case_a", "case_b", "case_c", "case_d"]
DICE = [0.9, 0.2, 0.6, float("nan")]  # case_b worst, case_a best; case_d has no score


def check_report(run_dir: Path, case_ids: list[str], metrics: list[str], pictures: bool = True) -> str:
    """Assert what a user sees in a run's report; returns the HTML text."""
    text = (run_dir / "report.html").read_text()
    sources = re.findall(r'src="([^"]*)"', text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources), "report.html is not standalone"
    assert "<script" not in text and "http://" not in text and "https://" not in text
    for name in case_ids + metrics:
        assert name in text, name
    assert "curves from tb/" in text
    if pictures:
        assert "run evaluation again" not in text and any(f"{c}:" in text for c in case_ids)
    markdown = (run_dir / "report.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert len(images) == len(sources) and all((run_dir / p).is_file() for p in images)
    assert all(p.startswith("report_files/") for p in images)
    return text


def _volume() -> tuple[np.ndarray, np.ndarray]:
    """A (4, 40, 48, 32) brain with a nested tumour off-centre around voxel (28, 14, 9)."""
    image = np.zeros((4, 40, 48, 32), np.float32)
    image[:, 4:36, 4:44, 2:30] = 1.0
    regions = np.zeros((3, 40, 48, 32), np.float32)
    regions[0, 24:33, 10:19, 5:14] = 1
    regions[1, 26:31, 12:17, 7:12] = 1
    regions[2, 27:30, 13:16, 8:11] = 1
    return image, regions


def test_orthogonal_panel_shows_the_tumour_in_three_planes():
    image, label = _volume()
    panel = orthogonal_panel(image, label, np.zeros_like(label), min_row_height=1)
    assert panel.dtype == np.uint8 and panel.ndim == 3 and panel.shape[2] == 3
    heights = [48, 32, 32]  # rows: axial (H, W) shown as (W, H); coronal (H, D) and sagittal (W, D) shown D-high
    rows = np.split(panel, np.cumsum([h + 2 for h in heights])[:-1], axis=0)
    for row, height, width in zip(rows, heights, (40, 40, 48)):
        reference, prediction = row[:height, width : 2 * width], row[:height, 2 * width : 3 * width]
        edema = np.isclose(reference, 0.5 * 255 + 0.5 * REGION_COLOURS[0], atol=1.5).all(-1)
        assert edema.any() and not np.isclose(prediction, 0.5 * 255 + 0.5 * REGION_COLOURS[0], atol=1.5).all(-1).any()
        assert (reference != row[:height, :width]).any(-1).sum() > 20  # the tumour is drawn over the image
    # axial row: anterior-up (rot90) tile, tumour at x 24..32 -> columns 24..32, y 10..18 -> rows 48-19..48-10
    ys, xs = np.nonzero((rows[0][:48, 40:80] != rows[0][:48, :40]).any(-1))
    assert 24 <= xs.min() and xs.max() <= 32 and 48 - 19 <= ys.min() and ys.max() <= 48 - 10


def test_orthogonal_panel_without_reference_cuts_through_the_predicted_tumour():
    image, pred = _volume()
    panel = orthogonal_panel(image, None, pred, min_row_height=64)
    assert panel.shape == ((48 + 2 + 32 + 2 + 32) * 2, 2 * 48 * 2, 3)  # image | prediction, enlarged 2x
    for top, height in ((0, 48), (50, 32), (84, 32)):  # every plane shows the predicted core in its colour
        row = panel[2 * top : 2 * (top + height)]
        assert np.isclose(row, 0.5 * 255 + 0.5 * REGION_COLOURS[1], atol=1.5).all(-1).any()


class _Engine:
    """Just enough of an Ignite engine for a handler's ``__call__``."""

    def __init__(self, batch, output):
        self.state = type("State", (), {"batch": batch, "output": output})()


def test_case_snapshots_write_one_picture_per_case(tmp_path):
    image, label = _volume()
    handler = CaseSnapshots(orthogonal_panel, str(tmp_path / "cases"))
    handler(_Engine([{"case_id": "BRATS_001"}, {"case_id": "BRATS_002"}],
                    [{"image": image, "label": label, "pred": label}] * 2))
    assert sorted(p.name for p in (tmp_path / "cases").iterdir()) == ["BRATS_001.png", "BRATS_002.png"]
    picture = np.asarray(Image.open(tmp_path / "cases" / "BRATS_001.png"))
    assert picture.shape == orthogonal_panel(image, label, label).shape


def _fake_run(root: Path, evaluated: bool = True, pictures: bool = True) -> Path:
    """A 2-D run folder written with the real writers: settings, split, TensorBoard scalars, eval tables, pictures."""
    from torch.utils.tensorboard import SummaryWriter

    from monai_app.metrics.tables import write_metric_tables
    from monai_app.config import save_settings

    run = root / "run"
    save_settings(run / "settings.json", {"output_dir": str(run), "max_epochs": 3},)
    (run / "split.json").write_text(json.dumps({"seed": 0, "train": ["t1", "t2"], "validation": ["v1"],
                                                "test": CASES}))
    writer = SummaryWriter(str(run / "tb"))
    for step in range(1, 4):
        writer.add_scalar("train/loss", 1.0 / step, step)
        writer.add_scalar("train/lr", 1e-3 / step, step)
        writer.add_scalar("val_mean_dice", 0.3 * step, step)
    writer.close()
    if evaluated:
        rows = [{"case_id": c, "dice": d, "hd95": 3.0 * i} for i, (c, d) in enumerate(zip(CASES, DICE))]
        write_metric_tables(rows, run / "eval")
        save_settings(run / "eval" / "settings.json", {"output_dir": str(run), "max_epochs": 3}, eval_split="test")
    if evaluated and pictures:
        photo, mask = np.full((3, 16, 24), 0.5, np.float32), np.zeros((1, 16, 24), np.float32)
        mask[0, 4:12, 6:18] = 1
        panel = lambda i, lab, p: label_panel(i, lab, p, palette=[(0, 0, 0), (255, 255, 255)])
        CaseSnapshots(panel, str(run / "eval" / "cases"))(
            _Engine([{"case_id": c} for c in CASES], [{"image": photo, "label": mask, "pred": mask}] * len(CASES)))
    return run


def test_report_of_an_evaluated_run_is_one_standalone_page(tmp_path):
    run = _fake_run(tmp_path)
    html_file, md_file = write_report(run)
    assert (html_file, md_file) == (run / "report.html", run / "report.md")
    text = check_report(run, ["case_a", "case_b", "case_c"], ["dice", "hd95", "train/loss", "val_mean_dice"])
    assert text.index("case_b:") < text.index("case_a:")  # worst first, then best
    assert "Training (settings.json)" in text and "case ids of the test split" in text and "torch" in text
    assert len(re.findall(r"<img ", text)) >= 2 + 2 + 2  # curves, strip plots (score, mm), case pictures


def test_report_without_pictures_or_evaluation_says_what_is_missing(tmp_path):
    run = _fake_run(tmp_path, pictures=False)
    write_report(run)
    assert "run evaluation again to get pictures" in (run / "report.html").read_text()
    bare = _fake_run(tmp_path / "bare", evaluated=False)
    write_report(bare)
    text = (bare / "report.html").read_text()
    assert "Evaluation is missing" in text and "train/loss" in text
    assert "Evaluation is missing" in (bare / "report.md").read_text()


def test_report_of_a_folder_that_is_not_a_run_names_it(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(UserInputError, match="photos"):
        write_report(tmp_path / "photos")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_renders_in_a_headless_browser(tmp_path):
    run = _fake_run(tmp_path)
    write_report(run)
    shot = tmp_path / "shot.png"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "render_report.py"), str(run), "--out", str(shot),
                           "--height", "1200"], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    picture = np.asarray(Image.open(shot).convert("RGB"))
    assert picture.shape[:2] == (1200, 1280) and picture.std() > 10  # a drawn page, not a blank one


def test_report_shows_lesion_wise_scores(tmp_path):
    """A BraTS evaluation with a lesion-wise convention: the headline has the lesion-wise Dice and HD95 of WT, TC
    and ET next to the global Dice, lesion HD95 goes to the millimetre plot and lesion counts get their own."""
    from monai_app.metrics.tables import write_metric_tables

    run = _fake_run(tmp_path, pictures=False)
    rows = [{"case_id": c, **{f"{k}_{r}": v for r in ("wt", "tc", "et", "netc", "snfh")
                              for k, v in (("dice", 0.8), ("hd95", 4.0), ("lesion_dice", 0.7 - i / 10),
                                           ("lesion_hd95", 5.0 + i), ("lesion_tp", 1), ("lesion_fp", i),
                                           ("lesion_fn", 0))}} for i, c in enumerate(CASES)]
    write_metric_tables(rows, run / "eval")
    text = (write_report(run)[0]).read_text()
    headline = text[:text.index("Training and validation curves")]
    for column in ("dice_wt", "lesion_dice_wt", "lesion_hd95_et"):
        assert f"<td>{column}</td>" in headline, column
    assert "lesion_dice_netc" not in headline
    figures = re.findall(r'alt="([^"]+)"', text)
    assert "surface distances: one point per case over a box plot" in figures
    assert any(f.startswith("lesions: true positives") for f in figures)
