"""Seeded splits: order-independent, a partition, saved once in the run folder and reused."""

from __future__ import annotations

import json
import random
import re

import pytest

from monai_app.datasets.brats import make_datalists
from monai_app.datasets.splits import load_or_make_split, split_ids
from monai_app.errors import DatasetError

IDS = [f"BRATS_{i:03d}" for i in range(1, 51)]


def _shuffled(ids: list[str], seed: int) -> list[str]:
    out = list(ids)
    random.Random(seed).shuffle(out)
    return out


def test_split_does_not_depend_on_input_order():
    reference = split_ids(IDS, seed=7)
    for order_seed in (1, 2):
        assert split_ids(_shuffled(IDS, order_seed), seed=7) == reference
    assert split_ids(reversed(IDS), seed=7) == reference  # any iterable


@pytest.mark.parametrize("val_fraction, test_fraction, sizes", [
    (0.1, 0.1, (40, 5, 5)),  # 10 % of 50 = 5
    (0.2, 0.1, (35, 10, 5)),
    (0.0, 0.3, (35, 0, 15)),
])
def test_every_id_in_exactly_one_part(val_fraction, test_fraction, sizes):
    split = split_ids(_shuffled(IDS, 3), seed=0, val_fraction=val_fraction, test_fraction=test_fraction)
    assert list(split) == ["train", "validation", "test"]
    assert tuple(len(split[k]) for k in ("train", "validation", "test")) == sizes
    everything = split["train"] + split["validation"] + split["test"]
    assert sorted(everything) == IDS  # no id lost, none twice


def test_different_seed_different_split():
    a, b = split_ids(IDS, seed=0), split_ids(IDS, seed=1)
    assert a["test"] != b["test"] and a["validation"] != b["validation"]
    assert split_ids(IDS, seed=0) == a  # same seed, same split


def test_three_cases_still_give_validation_and_test():
    split = split_ids(["c", "a", "b"], seed=0)
    assert len(split["validation"]) == 1 and len(split["test"]) == 1 and len(split["train"]) == 1
    assert sorted(split["train"] + split["validation"] + split["test"]) == ["a", "b", "c"]


@pytest.mark.parametrize("val_fraction, test_fraction", [(0.5, 0.5), (0.7, 0.4), (1.0, 0.0)])
def test_fractions_summing_to_one_or_more_are_refused(val_fraction, test_fraction):
    with pytest.raises(DatasetError, match="sum below 1"):
        split_ids(IDS, seed=0, val_fraction=val_fraction, test_fraction=test_fraction)


def test_saved_split_is_written_and_reused(tmp_path):
    first = load_or_make_split(_shuffled(IDS, 5), tmp_path, seed=0)
    saved = json.loads((tmp_path / "split.json").read_text())
    assert {k: saved[k] for k in ("train", "validation", "test")} == first
    assert first == split_ids(IDS, seed=0)
    assert [p.name for p in tmp_path.iterdir()] == ["split.json"]  # no temporary file left beside it
    # another seed and other fractions: the saved split wins, so evaluation scores what training held out
    again = load_or_make_split(IDS, tmp_path, seed=1, val_fraction=0.3, test_fraction=0.3)
    assert again == first != split_ids(IDS, seed=1, val_fraction=0.3, test_fraction=0.3)


def test_saved_split_naming_an_unknown_case_is_refused(tmp_path):
    (tmp_path / "split.json").write_text(json.dumps(
        {"seed": 0, "train": ["BRATS_001", "BRATS_002"], "validation": ["BRATS_999"], "test": ["BRATS_003"]}))
    with pytest.raises(DatasetError, match=re.escape(str(tmp_path / "split.json"))) as err:
        load_or_make_split(["BRATS_001", "BRATS_002", "BRATS_003"], tmp_path)
    assert "BRATS_999" in str(err.value)


@pytest.mark.parametrize("text", ['{"train": ["BRATS_001"],}', '[["BRATS_001"], ["BRATS_002"], ["BRATS_003"]]'],
                         ids=["trailing-comma", "list-of-parts"])
def test_saved_split_that_is_not_a_json_object_is_named(tmp_path, text):
    (tmp_path / "split.json").write_text(text)  # a trailing comma; a list of parts instead of an object
    with pytest.raises(DatasetError, match=re.escape(str(tmp_path / "split.json"))):
        load_or_make_split(["BRATS_001", "BRATS_002", "BRATS_003"], tmp_path)


def test_make_datalists_follows_the_saved_split(msd_tiny, tmp_path):
    split = {"train": ["BRATS_001", "BRATS_003", "BRATS_005", "BRATS_006"], "validation": ["BRATS_004"],
             "test": ["BRATS_002"]}
    (tmp_path / "split.json").write_text(json.dumps({"seed": 123, **split}))
    lists = make_datalists(msd_tiny, tmp_path, seed=0)
    assert {k: [item["case_id"] for item in v] for k, v in lists.items()} == split
    for items in lists.values():
        for item in items:
            assert item["image"] == str(msd_tiny / "imagesTr" / f"{item['case_id']}.nii.gz")
            assert item["label"] == str(msd_tiny / "labelsTr" / f"{item['case_id']}.nii.gz")


def test_make_datalists_saves_a_split_of_the_labelled_cases(msd_tiny, tmp_path):
    lists = make_datalists(msd_tiny, tmp_path, seed=0)
    saved = json.loads((tmp_path / "split.json").read_text())
    assert {k: [item["case_id"] for item in v] for k, v in lists.items()} == {k: saved[k] for k in lists}
    # the six labelled cases, each once; the unlabelled imagesTs case BRATS_007 is in no part
    assert sorted(i["case_id"] for v in lists.values() for i in v) == [f"BRATS_{i:03d}" for i in range(1, 7)]
    assert all(len(v) >= 1 for v in lists.values())
