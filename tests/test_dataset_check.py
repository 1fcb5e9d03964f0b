"""``validate_dataset`` and ``check_before_training``: every case opened, every problem listed with its file, on the
real layouts; the registry of dataset modules they run."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from conftest import CAMVID_SAMPLES, CCP_SAMPLES, VOC_SAMPLES, needs_camvid, needs_voc
from monai_app.cli import main
from monai_app.dataset_check import BUNDLES, check_before_training, format_validation, validate_dataset
from monai_app.errors import DatasetError, UserInputError


@pytest.fixture(scope="module")
def msd(tmp_path_factory):
    from monai_app.synthetic.brats import write_brats

    out = tmp_path_factory.mktemp("v") / "Task01_BrainTumour"
    write_brats(out, cases=5, dataset_format="msd", shape=(32, 32, 24), seed=1, test_cases=1)
    return out


@pytest.fixture(scope="module")
def synth_2d(tmp_path_factory):
    from monai_app.synthetic.camvid import write_camvid
    from monai_app.synthetic.carvana import write_carvana
    from monai_app.synthetic.ccp import write_ccp
    from monai_app.synthetic.voc import write_voc

    out = tmp_path_factory.mktemp("v2d")
    write_carvana(out / "carvana", cars=2, views=2, test_cars=1, size=(32, 48))
    write_camvid(out / "camvid", layout="segnet", train=3, val=1, test=1, size=(24, 32))
    write_voc(out / "voc", train=3, val=2, size=(30, 40))
    write_ccp(out / "ccp", pixel_level=3, image_level=1, size=(48, 32))
    return out


def _copy(src, tmp_path):
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def _resave(path, edit, dtype=None):
    """Rewrite a NIfTI file with ``edit(array)`` and its own affine."""
    img = nib.load(path)
    arr = np.asarray(img.dataobj)
    nib.save(nib.Nifti1Image(edit(arr.astype(dtype or arr.dtype)), img.affine), path)


def _found(problems: list[str], *expected: str) -> None:
    """Each expected fragment is in exactly one problem line, and there are no other problems."""
    for text in expected:
        assert sum(text in p for p in problems) == 1, (text, problems)
    assert len(problems) == len(expected), problems


def _palette_gif(ids: np.ndarray, path) -> None:
    img = Image.fromarray(ids.astype(np.uint8), mode="P")
    img.putpalette([0, 0, 0, 255, 255, 255, 255, 0, 0] + [0] * 759)
    img.save(path, optimize=False)


def _set(value, index):
    def edit(arr):
        arr[index] = value
        return arr
    return edit


def test_a_clean_msd_dataset_has_no_problems_and_a_summary(msd):
    result = validate_dataset("brats_unet3d", msd, progress=False)
    assert result.ok and result.cases == 6, result.problems
    summary = result.summary
    assert summary["layout"] == "msd" and summary["cases per part"] == {"training": 5, "test": 1}
    assert summary["label values"] <= {0, 1, 2, 3} and {0, 1, 2} <= summary["label values"]
    assert sum(summary["image shapes"].values()) == 6 and summary["channels"] == {"4": 6}
    assert sum(summary["voxel spacing (mm)"].values()) == 6
    text = format_validation(result)
    assert "layout: msd" in text and "cases per part: training 5, test 1" in text
    assert text.endswith("no problems found in 6 cases")


def test_every_damage_in_an_msd_dataset_is_reported_with_its_file(msd, tmp_path):
    root = _copy(msd, tmp_path)
    ids = sorted(e["image"].split("/")[-1][:-7] for e in json.loads((root / "dataset.json").read_text())["training"])
    img, lab = (lambda i: root / "imagesTr" / f"{ids[i]}.nii.gz"), (lambda i: root / "labelsTr" / f"{ids[i]}.nii.gz")
    data = lab(0).read_bytes()
    lab(0).write_bytes(data[: len(data) // 2])  # a truncated label file
    _resave(lab(1), _set(4, (0, 0, 0)))  # a BraTS 2021 label value in an MSD dataset
    _resave(img(1), _set(np.nan, (1, 1, 1, 0)), np.float32)  # and NaN voxels in its image
    _resave(img(2), lambda a: a[..., :3])  # three modalities instead of four
    _resave(lab(3), lambda a: a[:-2])  # a label whose shape differs from its image
    img(4).unlink()  # a listed file that is missing
    _resave(root / "imagesTs" / sorted((root / "imagesTs").iterdir())[0].name, lambda a: a * 0)  # an empty volume

    result = validate_dataset("brats_unet3d", root, progress=False)
    text = "\n".join(result.problems)
    assert f"{lab(0)}: cannot be read as NIfTI" in text
    assert f"{lab(1)}: label values [4] are not msd labels [0, 1, 2, 3]" in text
    assert f"{img(1)}: 1 NaN or infinite voxel(s)" in text
    assert f"{img(2)}: expected a 4-D image with 4 modalities" in text and ", 3)" in text
    assert f"{lab(3)}: label shape (" in text and "differs from the image's" in text
    assert f"{img(4)}: does not exist (listed in dataset.json)" in text
    assert "imagesTs/" in text and "every voxel is 0 (an empty volume)" in text
    assert len(result.problems) == 7 and not result.ok
    assert format_validation(result).endswith("7 problems in 6 of 6 cases")


def test_a_single_all_zero_modality_is_reported(msd, tmp_path):
    root = _copy(msd, tmp_path)
    path = sorted((root / "imagesTr").iterdir())[0]
    _resave(path, _set(0, (..., 2)))
    assert validate_dataset("brats_unet3d", root, progress=False).problems == [
        f"{path}: modality t1ce is 0 everywhere"]


def test_a_missing_folder_is_one_problem_and_the_labels_are_still_read(msd, tmp_path):
    root = _copy(msd, tmp_path)
    shutil.rmtree(root / "imagesTr")
    label = sorted((root / "labelsTr").iterdir())[2]
    _resave(label, _set(4, (0, 0, 0)))
    result = validate_dataset("brats_unet3d", root, progress=False)
    _found(result.problems, f"{root / 'imagesTr'}: folder does not exist", f"{label}: label values [4] are not msd")
    assert format_validation(result).endswith("2 problems in 5 of 6 cases")


def test_malformed_dataset_json_and_a_missing_folder_are_problems_not_tracebacks(msd, tmp_path):
    root = _copy(msd, tmp_path)
    (root / "dataset.json").write_text("{ not json")
    result = validate_dataset("brats_unet3d", root, progress=False)
    assert len(result.problems) == 1 and f"{root / 'dataset.json'}: not valid JSON" in result.problems[0]
    assert format_validation(result).endswith("1 problem")

    meta = json.loads((msd / "dataset.json").read_text())
    meta["training"][1] = {"image": "./imagesTr/x.nii.gz"}  # no label
    meta["training"][3] = 7
    meta["modality"] = {"0": "FLAIR"}
    (root / "dataset.json").write_text(json.dumps(meta))
    problems = validate_dataset("brats_unet3d", root, progress=False).problems
    assert len(problems) == 3, problems  # every bad entry, not only the first
    assert "'training' entry 1 is not an {\"image\": path, \"label\": path} object" in problems[0]
    assert "'training' entry 3" in problems[1] and "'modality' must name the 4 channels" in problems[2]

    (root / "dataset.json").unlink()  # msd named explicitly, but no dataset.json
    problems = validate_dataset("brats_unet3d", root, dataset_format="msd", progress=False).problems
    assert len(problems) == 1 and f"{root / 'dataset.json'}:" in problems[0]
    assert validate_dataset("brats_unet3d", root, progress=False).problems[0].startswith(f"{root}: not a BraTS")
    missing = validate_dataset("brats_unet3d", tmp_path / "nowhere", progress=False)
    assert missing.problems == [f"{tmp_path / 'nowhere'}: dataset folder does not exist or is not a folder"]
    with pytest.raises(UserInputError, match="dataset_format must be one of"):
        validate_dataset("brats_unet3d", root, dataset_format="brats2019")


@pytest.mark.parametrize("fmt, bad_value", [("brats2021", 3), ("brats2023", 5), ("brats2024ped", 5)])
def test_per_modality_case_folders_with_every_kind_of_damage(tmp_path, fmt, bad_value):
    from monai_app.synthetic.brats import write_brats

    root = tmp_path / fmt
    write_brats(root, cases=4, dataset_format=fmt, shape=(24, 24, 16), seed=2, test_cases=1)
    t1, t2 = ("_t1.", "_t2.") if fmt == "brats2021" else ("-t1n.", "-t2w.")
    seg = "_seg." if fmt == "brats2021" else "-seg."
    folders = sorted(p.parent for p in root.rglob(f"*{seg}nii*"))
    file = lambda i, part: next(p for p in folders[i].iterdir() if part in p.name)  # noqa: E731
    clean = validate_dataset("brats_unet3d", root, progress=False)
    assert clean.ok and clean.summary["layout"] == fmt, clean.problems
    assert clean.summary["cases per part"] == {"training": 4, "test (no segmentation)": 1}

    _resave(file(0, t1), lambda a: a[:-1])  # one modality a slice short
    _resave(file(1, seg), _set(bad_value, (0, 0, 0)))  # a label of the other BraTS convention
    img = nib.load(file(2, t2))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine * [[2], [2], [2], [1]]), file(2, t2))  # affine
    file(3, t1).unlink()  # a missing modality
    shape = nib.load(file(0, t1)).shape
    _found(validate_dataset("brats_unet3d", root, progress=False).problems,
           f"{file(0, t1)}: shape {shape} differs from the FLAIR's", f"{file(1, seg)}: label values [{bad_value}] are "
           f"not {fmt} labels", f"{file(2, t2)}: affine differs from the FLAIR's",
           f"{folders[3]}: case {folders[3].name} has no t1 file")


@pytest.mark.parametrize("kwargs, layout, codes, cavity", [
    ({"dataset_format": "brats2023", "resection_cavity": True}, "brats2023", {"GLI": 5}, {"present": 3, "absent": 1}),
    ({"dataset_format": "brats2023", "subchallenge": "MET"}, "brats2023", {"MET": 5}, {"absent": 4}),
    ({"dataset_format": "brats2024ped"}, "brats2024ped", {"PED": 5}, None),
])
def test_brats_2023_2025_sub_challenges_validate_cleanly(tmp_path, kwargs, layout, codes, cavity):
    """Post-treatment GLI (label 4, the resection cavity), MET and PED 2024-2025 (its own numbers) as downloaded:
    detected, no problems, the sub-challenges and the cases holding a cavity in the summary."""
    from monai_app.synthetic.brats import write_brats

    write_brats(tmp_path, cases=4, shape=(24, 24, 16), seed=2, test_cases=1, **kwargs)
    result = validate_dataset("brats_unet3d", tmp_path, progress=False)
    assert result.ok and result.summary["layout"] == layout, result.problems
    assert result.summary["sub-challenges"] == codes
    assert result.summary.get("resection cavity (label 4)") == cavity
    text = format_validation(result)
    assert f"layout: {layout}" in text and text.endswith("no problems found in 5 cases")


def test_ped_cases_read_with_the_glioma_numbers_are_noted(tmp_path):
    """BraTS-PED 2023 used the glioma numbers: --dataset-format brats2023 reads PED cases, with a note."""
    from monai_app.synthetic.brats import write_brats

    write_brats(tmp_path, cases=2, dataset_format="brats2023", shape=(24, 24, 16), seed=2, test_cases=0)
    for folder in sorted(tmp_path.iterdir()):  # the same files under BraTS-PED ids
        ped = folder.name.replace("GLI", "PED")
        for f in folder.iterdir():
            f.rename(folder / f.name.replace(folder.name, ped))
        folder.rename(tmp_path / ped)
    assert validate_dataset("brats_unet3d", tmp_path, progress=False).summary["layout"] == "brats2024ped"
    result = validate_dataset("brats_unet3d", tmp_path, dataset_format="brats2023", progress=False)
    assert result.ok and result.summary["sub-challenges"] == {"PED": 2}
    assert any("2 BraTS-PED case(s) read with the glioma labels" in n for n in result.summary["notes"])


def test_2d_datasets_from_the_synthetic_writers_validate(synth_2d, tmp_path):
    for bundle, folder, labels in (("carvana_unet2d", "carvana", {0, 1}),
                                   ("camvid_unet2d", "camvid", set(range(12))),
                                   ("voc_unet2d", "voc", set(range(21)) | {255}),
                                   ("ccp_unet2d", "ccp", set(range(59)))):
        result = validate_dataset(bundle, synth_2d / folder, progress=False)
        assert result.ok, (bundle, result.problems)
        assert result.cases > 0 and 0 in result.summary["label values"] <= labels, bundle
        assert result.summary["photo modes"] == {"RGB": result.cases}, bundle
    assert validate_dataset("camvid_unet2d", synth_2d / "camvid", progress=False).summary["cases per part"] == {
        "train": 3, "validation": 1, "test": 1}
    root = _copy(synth_2d / "carvana", tmp_path)
    shutil.rmtree(root / "train_masks")  # the same masks from train_masks.csv
    result = validate_dataset("carvana_unet2d", root, progress=False)
    assert result.ok and result.summary["mask source"] == "train_masks.csv"
    assert result.summary["label values"] == {0, 1}


def test_carvana_damages_in_gif_masks_and_in_the_csv(synth_2d, tmp_path):
    root = _copy(synth_2d / "carvana", tmp_path)
    photos = sorted((root / "train").glob("*.jpg"))
    masks = sorted((root / "train_masks").glob("*.gif"))
    _palette_gif(np.zeros((30, 48)), masks[0])  # wrong size
    _palette_gif(np.arange(32 * 48).reshape(32, 48) % 3, masks[1])  # values 0, 1 and 2
    masks[2].unlink()
    photos[3].write_bytes(photos[3].read_bytes()[:200])  # a truncated JPEG
    Image.new("L", (48, 32)).save(photos[0])  # a grayscale photo: a note, not a problem
    result = validate_dataset("carvana_unet2d", root, progress=False)
    _found(result.problems, f"{masks[0]}: label size 48x30 differs from the photo's 48x32",
           f"{masks[1]}: label values [2] are not labels of this dataset",
           f"{masks[2]}: does not exist (the mask of {photos[2].name})", f"{photos[3]}: cannot be read as an image")
    assert any("1 photo(s) are not 8-bit RGB (L: 1)" in n for n in result.summary["notes"])

    shutil.rmtree(root / "train_masks")
    rows = (root / "train_masks.csv").read_text().splitlines()
    rows[1] = rows[1].split(",")[0] + ",1 99999"  # a run beyond the photo
    (root / "train_masks.csv").write_text("\n".join(rows[:-1]) + "\n")  # and the last image without a row
    _found(validate_dataset("carvana_unet2d", root, progress=False).problems,
           f"train_masks.csv: the run-length mask of {photos[0].stem} does not decode",
           f"train_masks.csv: no row for {photos[3].name}", f"{photos[3]}: cannot be read as an image")


def test_camvid_damages(tmp_path):
    from monai_app.synthetic.camvid import write_camvid

    write_camvid(tmp_path / "camvid", train=3, val=1, test=1, size=(24, 32))
    images = sorted((tmp_path / "camvid" / "images_prepped_train").glob("*.png"))
    labels = sorted((tmp_path / "camvid" / "annotations_prepped_train").glob("*.png"))
    images[0].write_bytes(images[0].read_bytes()[:60])  # a corrupted PNG
    Image.fromarray(np.zeros((20, 32), np.uint8)).save(labels[1])  # a mask of the wrong size
    Image.fromarray(np.full((24, 32), 12, np.uint8)).save(labels[2])  # a label beyond void (11)
    result = validate_dataset("camvid_unet2d", tmp_path / "camvid", progress=False)
    assert result.summary["layout"] == "seed" and result.cases == 4
    assert len(result.problems) == 3, result.problems
    assert f"{images[0]}: cannot be read as an image" in result.problems[0]
    assert f"{labels[1]}: label size 32x20 differs from the photo's 32x24" in result.problems[1]
    assert f"{labels[2]}: label values [12] are not labels of this dataset" in result.problems[2]
    labels[1].unlink()
    assert f"{labels[1]}: does not exist (the annotation of {images[1].name})" in validate_dataset(
        "camvid_unet2d", tmp_path / "camvid", progress=False).problems[1]


def test_voc_damages(synth_2d, tmp_path):
    root = _copy(synth_2d / "voc", tmp_path)
    pngs = sorted(root.rglob("SegmentationClass/*.png"))
    ids = np.asarray(Image.open(pngs[0])).copy()
    ids[0, 0] = 30
    out = Image.fromarray(ids, mode="P")
    out.putpalette(Image.open(pngs[0]).getpalette())
    out.save(pngs[0])
    Image.open(pngs[1]).convert("RGB").save(pngs[1])  # colours instead of class ids
    pngs[2].unlink()
    jpg = pngs[3].parents[1] / "JPEGImages" / f"{pngs[3].stem}.jpg"
    jpg.unlink()
    assert sorted(validate_dataset("voc_unet2d", root, progress=False).problems) == sorted([
        f"{pngs[0]}: label values [30] are not labels of this dataset (VOC labels are 0..20 and void 255)",
        f"{pngs[1]}: a label image holds class ids (palette or gray), found mode RGB",
        f"{pngs[2]}: does not exist (the annotation of {pngs[2].stem}.jpg)",
        f"{jpg}: does not exist (the photo of {pngs[3]})"])
    shutil.rmtree(root / "VOCdevkit" / "VOC2012" / "ImageSets")
    assert "not a Pascal VOC folder" in validate_dataset("voc_unet2d", root, progress=False).problems[0]


def test_ccp_damages(synth_2d, tmp_path):
    from scipy.io import savemat

    root = _copy(synth_2d / "ccp", tmp_path)
    mats = sorted((root / "annotations" / "pixel-level").glob("*.mat"))
    savemat(mats[0], {"labels": np.zeros((48, 32), np.uint8)})  # the wrong variable name
    savemat(mats[1], {"groundtruth": np.zeros((40, 32), np.uint8)})  # the wrong size
    photo = root / "photos" / f"{mats[2].stem}.jpg"
    photo.unlink()
    _found(validate_dataset("ccp_unet2d", root, progress=False).problems,
           f"{mats[0]}: the pixel-level annotation has no variable 'groundtruth'",
           f"{mats[1]}: label size 32x40 differs from the photo's", f"{photo}: does not exist (the photo of {mats[2]})")


@pytest.mark.parametrize("bundle, folder, values", [
    pytest.param("camvid_unet2d", CAMVID_SAMPLES, set(range(12)), marks=needs_camvid, id="camvid"),
    pytest.param("voc_unet2d", VOC_SAMPLES, {0, 9, 12, 255}, marks=needs_voc, id="voc"),
    pytest.param("ccp_unet2d", CCP_SAMPLES, {0, 5, 19, 39, 41, 42, 45, 47, 55}, id="ccp")])
def test_the_real_samples_validate(bundle, folder, values, capsys):
    result = validate_dataset(bundle, folder, progress=False)
    assert result.ok and result.summary["label values"] == values, result.problems
    assert main(["validate", bundle, "--dataset-dir", str(folder)]) == 0
    assert "no problems found in" in capsys.readouterr().out


def _grouping_without(tag: str, path):
    """The bundle's grouping file, less ``tag`` in ``by_name``, written to ``path``."""
    from monai_app.datasets.ccp import default_grouping_file

    content = json.loads(default_grouping_file().read_text())
    del content["by_name"][tag]
    path.write_text(json.dumps(content))
    return path


def test_ccp_label_list_is_checked_against_the_given_grouping_file(synth_2d, tmp_path, capsys):
    root = synth_2d / "ccp"
    bad = _grouping_without("bag", tmp_path / "grouping.json")
    expected = f"{bad}: the grouping does not match the tag names: by_name lacks 1 tag(s) ['bag']"
    assert validate_dataset("ccp_unet2d", root, progress=False, grouping_file=bad).problems == [expected]
    default = validate_dataset("ccp_unet2d", root, progress=False)
    assert default.ok and "matching the bundle's grouping" in default.summary["tag names"], default.problems
    assert main(["validate", "ccp_unet2d", "--dataset-dir", str(root), "--grouping-file", str(bad)]) == 1
    assert expected in capsys.readouterr().out

    run = tmp_path / "run"
    check_before_training("ccp_unet2d", root, "auto", run, True)  # the default grouping: clean, remembered
    assert json.loads((run / "dataset_check.json").read_text())["key"]["options"] == {}
    with pytest.raises(DatasetError) as error:  # another grouping file is checked again, not taken from the record
        check_before_training("ccp_unet2d", root, "auto", run, True, grouping_file=str(bad))
    assert str(error.value) == f"{expected} (training did not start)"


def test_options_a_dataset_does_not_take_are_refused(synth_2d):
    with pytest.raises(UserInputError, match="voc_unet2d: unknown dataset check option.s. grouping_file"):
        validate_dataset("voc_unet2d", synth_2d / "voc", progress=False, grouping_file="x.json")


def test_the_registry_names_a_checking_module_for_each_of_the_five_bundles():
    import inspect

    from monai_app.datasets import REGISTRY

    assert set(REGISTRY) == {"brats_unet3d", "carvana_unet2d", "camvid_unet2d", "voc_unet2d", "ccp_unet2d"}
    assert BUNDLES == tuple(REGISTRY)
    for bundle, entry in REGISTRY.items():
        lister, check = getattr(entry.module, "cases_to_check", None), getattr(entry.module, "check_case", None)
        assert callable(lister) and callable(check), bundle
        assert list(inspect.signature(lister).parameters)[:3] == ["root", "dataset_format", "result"], bundle
        assert list(inspect.signature(check).parameters) == ["case", "result"], bundle
        assert entry.formats[0] == "auto" and entry.description, bundle
