"""``monai-app package``: a tiny trained and evaluated run (Carvana 2-D, BraTS 3-D) packaged, then held to the MONAI
Model Zoo's CI rules (its ``ci/verify_bundle.py`` in min and full mode, ``ci/get_bundle_requirements.py``, its
pre-commit hooks), written here as tests, and run through MONAI's own API from a copy outside the repository.

The zoo rules, as read in Project-MONAI/model-zoo (ci/verify_bundle.py, ci/utils.py, ci/get_bundle_requirements.py,
.pre-commit-config.yaml, CONTRIBUTING.md):
- files: ``configs/metadata.json`` and ``LICENSE`` are necessary; ``models/model.pt`` (or a ``large_files.yml``
  pointing to it) and ``configs/inference.json`` preferred; ``docs/README.md``, ``docs/data_license.txt``;
- ``large_files.yml``: a ``large_files`` list of ``path``, ``url``, ``hash_val``, ``hash_type`` (md5, sha1, sha256 or
  sha512), downloaded with MONAI's ``download_url``, which checks the hash of a file already there; no file over
  25 MB except those it lists;
- ``version`` in ``changelog``, a version not released before (here: newer than the repository's bundle), the zip
  named ``<bundle>_v<version>.zip``;
- ``verify_metadata`` against the schema ``metadata.json`` names; in full mode the inference workflow's
  properties, ``verify_net_in_out`` and ``ckpt_export`` with ``bundle_root`` the bundle, and ``torch.jit.load`` of
  the shipped ``models/model.ts``;
- requirements: ``monai==monai_version``, ``torch==pytorch_version``, ``numpy==numpy_version`` and every
  ``name==version`` of ``required_packages_version`` (and ``optional_packages_version``) must install: each is
  checked here to be a real distribution installed at that version;
- pre-commit: JSON as ``pretty-format-json --no-sort-keys --indent=4``, one final newline, no trailing whitespace,
  no CRLF, valid YAML; inference.json keys ``bundle_root``, ``device``, ``network_def``, ``inferer``, ``output_dir``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import zipfile
from importlib import metadata as dist
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO
from monai_app.cli import main
from monai_app.errors import UserInputError
from monai_app.package import ZOO_FILE_LIMIT, bump, package_run

pytestmark = pytest.mark.slow

SCHEMA = REPO / "monai_app" / "schemas" / "meta_schema_20240725.json"
ZOO_HASH_TYPES = ("md5", "sha1", "sha256", "sha512")  # ci/utils.py SUPPORTED_HASH_TYPES
NECESSARY = ("configs/metadata.json", "LICENSE")  # ci/verify_bundle.py necessary_files_list
PREFERRED = ("models/model.pt", "configs/inference.json")  # ci/verify_bundle.py preferred_files_list
CARD_SECTIONS = ["Model Overview", "Data", "Training configuration", "Performance", "System Configuration",
                 "MONAI Bundle Commands", "Limitations", "References", "License"]
LAYOUT = ["LICENSE", "configs/evaluate.json", "configs/inference.json", "configs/logging.conf",
          "configs/metadata.json", "configs/multi_gpu_train.json", "configs/train.json", "docs/README.md",
          "docs/data_license.txt", "large_files.yml", "models/model.onnx", "models/model.pt", "models/model.ts"]
CARVANA = ["--features", "[8,16,16,32,32,8]", "--image_size", "32", "--num_workers", "0"]
BRATS = ["--channels", "[8,16,32]", "--roi_size", "[32,32,32]", "--num_workers", "0"]


# ------------------------------------------------------------------------------------------------ runs and packages
@pytest.fixture(scope="module")
def carvana(tmp_path_factory) -> dict:
    """A 1-epoch Carvana run (5 cars of 4 views, 48x72), evaluated, its test photos as PNG, and its package."""
    from monai_app.synthetic.carvana import write_carvana

    root = tmp_path_factory.mktemp("carvana")
    write_carvana(root / "data", cars=5, views=4, test_cars=1, size=(48, 72), seed=2)
    common = ["--dataset-dir", str(root / "data"), "--output-dir", str(root / "run"), *CARVANA]
    assert main(["train", "carvana_unet2d", *common, "--max-epochs", "1", "--batch_size", "4"]) == 0
    assert main(["evaluate", "carvana_unet2d", *common]) == 0
    (root / "png").mkdir()
    for photo in sorted((root / "data" / "test").glob("*.jpg"))[:2]:
        Image.open(photo).save(root / "png" / f"{photo.stem}.png")
    result = package_run("carvana_unet2d", root / "run", root / "dist")
    return {"root": root, "run": root / "run", "input": root / "png", "result": result, "args": CARVANA,
            "bundle": "carvana_unet2d"}


@pytest.fixture(scope="module")
def brats(msd_tiny, tmp_path_factory) -> dict:
    """A 1-epoch BraTS run on the tiny MSD dataset (3-level UNet, 32^3 patches), evaluated, and its package."""
    root = tmp_path_factory.mktemp("brats")
    common = ["--dataset-dir", str(msd_tiny), "--output-dir", str(root / "run"), *BRATS]
    assert main(["train", "brats_unet3d", *common, "--max-epochs", "1", "--val_interval", "1",
                 "--batch_size", "2"]) == 0
    assert main(["evaluate", "brats_unet3d", *common]) == 0
    rules = {"rules": {"min_lesion_mm3": {"wt": 0, "tc": 0, "et": 0}, "et_to_netc_below_mm3": 1e9}}
    (root / "run" / "postprocessing.json").write_text(json.dumps(rules))  # as `monai-app postprocess` leaves it
    result = package_run("brats_unet3d", root / "run", root / "dist")
    return {"root": root, "run": root / "run", "input": min((msd_tiny / "imagesTs").glob("*.nii.gz")),
            "result": result, "args": BRATS, "bundle": "brats_unet3d"}


@pytest.fixture(params=["carvana", "brats"])
def packaged(request) -> dict:
    return request.getfixturevalue(request.param)


def _meta(folder: Path) -> dict:
    return json.loads((folder / "configs" / "metadata.json").read_text())


def _large_files(path: Path) -> list[dict]:
    """``large_files.yml`` as the zoo reads it (MONAI's ConfigParser, PyYAML); without PyYAML, the block list this
    package writes, read line by line."""
    try:
        import yaml  # noqa: F401
        from monai.bundle import ConfigParser

        parser = ConfigParser()
        parser.read_config(str(path))
        return parser.get()["large_files"]
    except ImportError:
        entries: list[dict] = []
        for line in path.read_text().splitlines():
            if line.startswith("- "):
                entries.append({})
            if entries and ":" in line and not line.startswith("#"):
                key, value = line.lstrip("- ").split(":", 1)
                entries[-1][key.strip()] = json.loads(value)
        return entries


# ------------------------------------------------------------------------------------------------ the package
def test_the_package_folder_and_its_zip(packaged):
    result, out = packaged["result"], packaged["root"] / "dist"
    folder, name, version = Path(result["folder"]), packaged["bundle"], result["version"]
    layout = sorted(LAYOUT + (["postprocessing.json"] if name == "brats_unet3d" else []))  # the run's choice
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == layout
    assert sorted(p.name for p in out.iterdir()) == [name, f"{name}_v{version}.zip"]  # no temporary left
    assert re.fullmatch(r"^(.+)\_v(\d.*)$", Path(result["zip"]).stem)[1] == name  # ci/utils.py bundle naming
    with zipfile.ZipFile(result["zip"]) as zf:
        assert zf.testzip() is None
        assert sorted(zf.namelist()) == [f"{name}/{path}" for path in layout]
        assert zf.read(f"{name}/models/model.pt") == (folder / "models" / "model.pt").read_bytes()
    assert result["files"] == {p: (folder / p).stat().st_size for p in layout}
    # the run's best weights, as a state dict
    assert (folder / "models" / "model.pt").read_bytes() == (packaged["run"] / "models" / "model.pt").read_bytes()
    assert all(isinstance(v, torch.Tensor) for v in torch.load(folder / "models" / "model.pt",
                                                               weights_only=True).values())


def test_monai_download_unpacks_the_zip(carvana, tmp_path):
    from monai.bundle import download

    download(name="carvana_unet2d", url=Path(carvana["result"]["zip"]).as_uri(), bundle_dir=str(tmp_path))
    for path in LAYOUT:
        assert (tmp_path / "carvana_unet2d" / path).read_bytes() == (Path(carvana["result"]["folder"]) /
                                                                     path).read_bytes(), path


def test_the_metadata_holds_the_run_and_installable_versions(packaged):
    folder, run = Path(packaged["result"]["folder"]), packaged["run"]
    meta, source = _meta(folder), json.loads((REPO / "bundles" / packaged["bundle"] / "configs" /
                                              "metadata.json").read_text())
    assert meta["version"] == bump(source["version"]) == packaged["result"]["version"]
    assert next(iter(meta["changelog"])) == meta["version"] and list(meta["changelog"])[1:] == list(source["changelog"])
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert meta["eval_metrics"] == {k: round(v["mean"], 4) for k, v in summary.items()}
    assert meta["required_packages_version"]["monai-app"] == dist.version("monai-app")
    assert set(meta["required_packages_version"]) == set(source["required_packages_version"])
    settings = json.loads((run / "settings.json").read_text())
    image = meta["network_data_format"]["inputs"]["image"]
    if packaged["bundle"] == "brats_unet3d":  # the patch size and channels the weights were trained with
        assert image["spatial_shape"] == settings["roi_size"] == [32, 32, 32]
        assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == 3
        assert list(meta["network_data_format"]["outputs"]["pred"]["channel_def"]) == ["0", "1", "2"]
    else:
        assert image["spatial_shape"] == ["16*n", "16*n"]


def test_the_configs_carry_the_run_settings_and_point_at_the_packaged_weights(packaged):
    folder, settings = Path(packaged["result"]["folder"]), json.loads((packaged["run"] / "settings.json").read_text())
    infer = json.loads((folder / "configs" / "inference.json").read_text())
    train = json.loads((folder / "configs" / "train.json").read_text())
    key = "features" if packaged["bundle"] == "carvana_unet2d" else "channels"
    assert infer[key] == train[key] == settings[key] and train["max_epochs"] == settings["max_epochs"] == 1
    assert infer["ckpt_path"] == "$os.path.join(@bundle_root, 'models', 'model.pt')"
    assert infer["bundle_root"] == train["bundle_root"] == "$app.bundle_root()"
    assert infer.get("dataset_format", "auto") == "auto"  # inference writes its input's convention
    assert packaged["result"]["carried"][key] == settings[key]
    for path in folder.rglob("*"):  # nothing names the machine the run was made on
        if path.suffix in (".json", ".md", ".yml", ".txt"):
            assert str(packaged["root"]) not in path.read_text(), path


def test_the_model_card_is_filled_from_the_run(packaged):
    folder, run = Path(packaged["result"]["folder"]), packaged["run"]
    card = (folder / "docs" / "README.md").read_text()
    headings = re.findall(r"^## (.+)$", card, re.MULTILINE)
    assert headings == CARD_SECTIONS
    split = json.loads((run / "split.json").read_text())
    for part in ("train", "validation", "test"):
        assert f"| {part} | {len(split[part])} |" in card
    summary = json.loads((run / "eval" / "summary.json").read_text())
    for column, stats in summary.items():  # every column of the held-out table, with its case count
        assert re.search(rf"^\| {column} \| .* \| {stats['n']} \|$", card, re.MULTILINE), column
    settings = json.loads((run / "settings.json").read_text())
    for version in settings["versions"].values():
        assert version in card
    assert f"pip install monai_app-{dist.version('monai-app')}-py3-none-any.whl" in card
    assert "python -m build" in card and "data_license.txt" in card and "../../" not in card
    assert "No trained weights are distributed" not in card


# ------------------------------------------------------------------------------------------------ the zoo's rules
def test_zoo_min_mode_files_version_metadata_and_large_files(packaged):
    from monai.apps.utils import download_url
    from monai.bundle import verify_metadata

    folder, name = Path(packaged["result"]["folder"]), packaged["bundle"]
    for path in (*NECESSARY, *PREFERRED, "docs/README.md", "docs/data_license.txt"):
        assert (folder / path).is_file(), path
    meta = _meta(folder)
    assert meta["version"] in meta["changelog"]
    released = json.loads((REPO / "bundles" / name / "configs" / "metadata.json").read_text())["version"]
    assert f"{name}_v{meta['version']}" != f"{name}_v{released}"  # a version not used before
    assert Path(meta["schema"]).name == SCHEMA.name
    verify_metadata(meta_file=str(folder / "configs" / "metadata.json"), filepath=str(SCHEMA))
    entries = _large_files(folder / "large_files.yml")
    assert sorted(e["path"] for e in entries) == ["models/model.onnx", "models/model.pt", "models/model.ts"]
    for entry in entries:  # as ci/utils.py download_large_files: the files are there, so only their hash is checked
        assert set(entry) == {"path", "url", "hash_val", "hash_type"} and entry["hash_type"] in ZOO_HASH_TYPES
        assert entry["url"].startswith("https://FILL-IN.invalid/")
        assert entry["hash_val"] == hashlib.sha256((folder / entry["path"]).read_bytes()).hexdigest()
        download_url(url=entry["url"], filepath=folder / entry["path"], hash_val=entry["hash_val"],
                     hash_type=entry["hash_type"], fuzzy=True)
    listed = {e["path"] for e in entries}
    big = [p for p, size in packaged["result"]["files"].items() if size > ZOO_FILE_LIMIT and p not in listed]
    assert big == []


def test_zoo_full_mode_properties_shapes_and_torchscript(packaged, tmp_path):
    from monai.bundle import ConfigWorkflow, ckpt_export, verify_net_in_out
    from monai.data import load_net_with_metadata

    folder = tmp_path / packaged["bundle"]
    shutil.copytree(packaged["result"]["folder"], folder)
    configs = folder / "configs"
    workflow = ConfigWorkflow(config_file=str(configs / "inference.json"), meta_file=str(configs / "metadata.json"),
                              logging_file=str(configs / "logging.conf"), workflow_type="infer",
                              bundle_root=str(folder), input=str(packaged["input"]), output_dir=str(tmp_path / "out"))
    workflow.initialize()
    assert workflow.check_properties() == []  # the zoo checks them for the apps a bundle supports
    verify_net_in_out(net_id="network_def", meta_file=str(configs / "metadata.json"),
                      config_file=str(configs / "inference.json"), bundle_root=str(folder))
    ckpt_export(net_id="network_def", filepath=str(folder / "models" / "verify_model.ts"),
                ckpt_file=str(folder / "models" / "model.pt"), meta_file=str(configs / "metadata.json"),
                config_file=str(configs / "inference.json"), bundle_root=str(folder))
    torch.jit.load(str(folder / "models" / "model.ts"))  # the shipped TorchScript loads
    _, meta, extra = load_net_with_metadata(str(folder / "models" / "model.ts"), more_extra_files=("inference.json",))
    assert meta["version"] == _meta(folder)["version"]  # the packaged configs are embedded, not the repository's
    assert json.loads(extra["inference.json"]) == json.loads((configs / "inference.json").read_text())


def test_zoo_requirements_are_real_installed_versions(packaged):
    import monai

    meta = _meta(Path(packaged["result"]["folder"]))
    assert meta["monai_version"] == monai.__version__
    requirements = [("monai", meta["monai_version"]), ("torch", meta["pytorch_version"]),
                    ("numpy", meta["numpy_version"])]
    for key in ("optional_packages_version", "required_packages_version"):
        requirements += list(meta.get(key, {}).items())
    for name, version in requirements:  # as ci/get_bundle_requirements.py writes them: name==version
        assert re.fullmatch(r"\d+(\.\d+)*", version), f"{name}=={version}"
        assert dist.version(name).split("+")[0] == version, f"{name}=={version} is not the installed version"


def test_zoo_formatting_hooks(packaged):
    folder = Path(packaged["result"]["folder"])
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix not in (".pt", ".ts", ".onnx")):
        text = path.read_text()
        assert text.endswith("\n") and not text.endswith("\n\n"), f"{path}: end-of-file-fixer"
        assert "\r" not in text, f"{path}: mixed-line-ending"
        assert not [n for n, line in enumerate(text.splitlines(), 1) if line != line.rstrip()], \
            f"{path}: trailing-whitespace"
        if path.suffix == ".json":
            assert text == json.dumps(json.loads(text), indent=4, ensure_ascii=True) + "\n", \
                f"{path}: pretty-format-json --no-sort-keys --indent=4"
    infer = json.loads((folder / "configs" / "inference.json").read_text())
    assert {"bundle_root", "device", "network_def", "inferer", "output_dir"} <= set(infer)  # CONTRIBUTING.md
    assert re.fullmatch(r"[a-z0-9_]+", folder.name)


# ------------------------------------------------------------------------------------------------ MONAI's own API
def _read(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj) if path.name.endswith(".nii.gz") else np.asarray(Image.open(path))


def test_the_package_runs_through_monai_outside_the_repository(packaged, tmp_path, monkeypatch):
    """``monai.bundle.create_workflow`` on a copy of the package, from inside it, with no repository bundle in reach,
    writes the label maps ``monai-app infer`` writes with the run's checkpoint."""
    from monai.bundle import create_workflow

    name, inputs = packaged["bundle"], packaged["input"]
    assert main(["infer", name, "--input", str(inputs), "--output-dir", str(tmp_path / "app"), "--ckpt",
                 str(packaged["run"] / "models" / "model.pt"), *packaged["args"]]) == 0
    copy = tmp_path / "elsewhere" / name
    shutil.copytree(packaged["result"]["folder"], copy)
    (tmp_path / "no_bundles").mkdir()
    monkeypatch.setenv("MONAI_APP_BUNDLES", str(tmp_path / "no_bundles"))
    monkeypatch.chdir(copy)
    workflow = create_workflow(config_file="configs/inference.json", workflow_type="infer", input=str(inputs),
                               output_dir=str(tmp_path / "monai"), num_workers=0)
    assert Path(workflow.parser.get_parsed_content("ckpt_path")).resolve() == copy / "models" / "model.pt"
    if name == "brats_unet3d":  # the run's post-processing travels with the package and applies there
        assert Path(workflow.parser.get_parsed_content("postprocessing_file")).resolve() == copy / "postprocessing.json"
    workflow.run()
    workflow.finalize()
    written = sorted(p.name for p in (tmp_path / "app").iterdir() if p.suffix in (".png", ".gz"))
    assert written and written == sorted(p.name for p in (tmp_path / "monai").iterdir() if p.suffix in (".png",
                                                                                                        ".gz"))
    for file in written:
        np.testing.assert_array_equal(_read(tmp_path / "app" / file), _read(tmp_path / "monai" / file))


# ------------------------------------------------------------------------------------------------ refusals, the CLI
def test_a_run_without_evaluation_or_best_checkpoint_is_refused_in_one_line(carvana, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    shutil.copy(carvana["run"] / "settings.json", run)
    shutil.copy(carvana["run"] / "models" / "last.pt", run / "models")
    with pytest.raises(UserInputError) as info:
        package_run("carvana_unet2d", run, tmp_path / "dist")
    text = str(info.value)
    assert text.startswith(f"{run}: cannot be packaged: no evaluation (eval/summary.json), no best checkpoint "
                           "(models/model.pt)") and "--ckpt" in text and "\n" not in text
    assert not (tmp_path / "dist").exists()
    (run / "eval").mkdir()
    shutil.copy(carvana["run"] / "eval" / "summary.json", run / "eval")
    assert main(["package", "carvana_unet2d", "--run", str(run), "--out", str(tmp_path / "dist")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no best checkpoint (models/model.pt)" in err and "eval/" not in err


def test_cli_packages_last_pt_and_replaces_a_previous_package(carvana, tmp_path, capsys):
    run = carvana["run"]
    out = tmp_path / "dist"
    shutil.copytree(carvana["result"]["folder"], out / "carvana_unet2d")
    (out / "carvana_unet2d" / "stale.txt").write_text("from an earlier package\n")
    assert main(["package", "carvana_unet2d", "--run", str(run), "--out", str(out), "--ckpt",
                 str(run / "models" / "last.pt")]) == 0
    printed = capsys.readouterr().out
    assert "models/model.ts" in printed and "large_files.yml" in printed and "FILL-IN.invalid" in printed
    assert not (out / "carvana_unet2d" / "stale.txt").exists()
    packaged = torch.load(out / "carvana_unet2d" / "models" / "model.pt", weights_only=True)
    last = torch.load(run / "models" / "last.pt", weights_only=True)["model"]  # 1 epoch: last and best agree
    assert packaged.keys() == last.keys() and all(torch.equal(packaged[k], last[k]) for k in last)


def test_a_failed_package_leaves_the_previous_one_whole(carvana, tmp_path, monkeypatch):
    from monai_app.export import ExportError

    out = tmp_path / "dist"
    shutil.copytree(carvana["result"]["folder"], out / "carvana_unet2d")
    before = {p: p.read_bytes() for p in (out / "carvana_unet2d").rglob("*") if p.is_file()}

    def broken(*args, **kwargs):
        raise ExportError("torchscript export of model.pt failed (RuntimeError: boom); nothing was written")

    monkeypatch.setattr("monai_app.package.export_bundle", broken)
    with pytest.raises(ExportError):
        package_run("carvana_unet2d", carvana["run"], out)
    assert sorted(p.name for p in out.iterdir()) == ["carvana_unet2d"]
    assert {p: p.read_bytes() for p in (out / "carvana_unet2d").rglob("*") if p.is_file()} == before


def test_a_run_of_another_bundle_is_refused_in_one_line(carvana, tmp_path):
    with pytest.raises(UserInputError, match=r"model\.pt: does not fit this bundle's network: .*pass the same") as e:
        package_run("brats_unet3d", carvana["run"], tmp_path / "dist")
    assert "\n" not in str(e.value) and sorted(p.name for p in (tmp_path / "dist").iterdir()) == []


def test_evaluate_and_infer_take_last_pt(carvana, tmp_path):
    """``last.pt`` (the training state) works wherever ``model.pt`` does; after 1 epoch they hold the same weights."""
    run = tmp_path / "run"
    shutil.copytree(carvana["run"], run, ignore=shutil.ignore_patterns("cache", "tb", "report*"))
    data = str(carvana["root"] / "data")
    assert main(["evaluate", "carvana_unet2d", "--dataset-dir", data, "--output-dir", str(run), "--ckpt",
                 str(run / "models" / "last.pt"), *CARVANA]) == 0
    assert json.loads((run / "eval" / "summary.json").read_text()) == json.loads(
        (carvana["run"] / "eval" / "summary.json").read_text())
    assert main(["infer", "carvana_unet2d", "--input", str(carvana["input"]), "--output-dir", str(tmp_path / "last"),
                 "--ckpt", str(run / "models" / "last.pt"), *CARVANA]) == 0
    assert main(["infer", "carvana_unet2d", "--input", str(carvana["input"]), "--output-dir", str(tmp_path / "best"),
                 "--ckpt", str(run / "models" / "model.pt"), *CARVANA]) == 0
    for png in sorted((tmp_path / "best").glob("*.png")):
        np.testing.assert_array_equal(_read(png), _read(tmp_path / "last" / png.name))


def test_an_onnx_failure_leaves_onnx_out_and_keeps_the_rest(carvana, tmp_path, monkeypatch):
    import monai.bundle

    def broken(filepath, **kwargs):
        raise RuntimeError("Unsupported operator aten::frobnicate\n\nthe exporter's long story")

    monkeypatch.setattr(monai.bundle, "onnx_export", broken)
    result = package_run("carvana_unet2d", carvana["run"], tmp_path / "dist")
    assert "onnx export of" in result["onnx_left_out"] and "aten::frobnicate" in result["onnx_left_out"]
    assert sorted(result["files"]) == [p for p in LAYOUT if p != "models/model.onnx"]
    entries = _large_files(Path(result["folder"]) / "large_files.yml")
    assert sorted(e["path"] for e in entries) == ["models/model.pt", "models/model.ts"]


def test_the_card_names_a_settings_file_without_the_packaging_machines_folders(tmp_path):
    """CCP's grouping_file is an absolute path on the machine that trained: the card shows its name only."""
    from monai_app.model_card import RunRecord, _training

    run = RunRecord(path=tmp_path, ckpt=tmp_path / "model.pt", summary={},
                    settings={"grouping_file": "/home/someone/repo/bundles/ccp_unet2d/configs/ccp_59_to_14.json",
                              "max_epochs": 3})
    text = _training(run, {})
    assert "ccp_59_to_14.json" in text and "/home/someone" not in text and "| max_epochs | 3 |" in text
