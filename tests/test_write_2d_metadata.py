"""``scripts/write_2d_metadata.py`` keeps each 2-D bundle's version, changelog and the keys it does not write: rerun
on the committed metadata.json files it writes them back byte for byte."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest

from conftest import REPO

BUNDLES = ("carvana_unet2d", "camvid_unet2d", "voc_unet2d", "ccp_unet2d")


@pytest.fixture(scope="module")
def script():
    """The maintenance script, imported as a module (``scripts/`` is not a package)."""
    spec = importlib.util.spec_from_file_location("write_2d_metadata", REPO / "scripts" / "write_2d_metadata.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _copy_metadata(tmp_path):
    """The four bundles' committed metadata.json, copied to ``tmp_path/<bundle>/configs/``; ``{bundle: bytes}``."""
    committed = {}
    for bundle in BUNDLES:
        source = REPO / "bundles" / bundle / "configs" / "metadata.json"
        (tmp_path / bundle / "configs").mkdir(parents=True)
        shutil.copyfile(source, tmp_path / bundle / "configs" / "metadata.json")
        committed[bundle] = source.read_bytes()
    return committed


def test_rerunning_on_the_committed_files_changes_nothing(script, tmp_path):
    committed = _copy_metadata(tmp_path)
    written = script.write_metadata(tmp_path)
    assert sorted(p.parent.parent.name for p in written) == sorted(BUNDLES)
    for bundle, before in committed.items():
        after = (tmp_path / bundle / "configs" / "metadata.json").read_bytes()
        old, new = json.loads(before), json.loads(after)
        assert new["version"] == old["version"] and new["changelog"] == old["changelog"], bundle
        assert list(new["changelog"])[-1] == "0.1.0" and len(new["changelog"]) > 1, bundle  # history kept
        assert after == before, f"{bundle}: the rewritten metadata.json differs from the committed one"


def test_the_version_changelog_and_unknown_keys_are_kept_and_generated_keys_refreshed(script, tmp_path):
    _copy_metadata(tmp_path)
    path = tmp_path / "voc_unet2d" / "configs" / "metadata.json"
    edited = json.loads(path.read_text())
    edited.update(version="9.9.9", changelog={"9.9.9": "by hand", **edited["changelog"]}, task="stale", notes="mine")
    del edited["references"]
    path.write_text(json.dumps(edited, indent=4) + "\n")
    script.write_metadata(tmp_path)
    new = json.loads(path.read_text())
    assert new["version"] == "9.9.9" and list(new["changelog"])[0] == "9.9.9"
    assert new["notes"] == "mine" and list(new)[-1] == "notes"  # a key the script does not write stays in place
    assert new["task"] == script.VOC["task"] and new["references"] == script.VOC["references"]
    assert list(new).index("references") == list(script.VOC).index("references")  # put back where it belongs


def test_a_new_bundle_starts_at_its_first_release(script, tmp_path):
    script.write_metadata(tmp_path)
    meta = json.loads((tmp_path / "ccp_unet2d" / "configs" / "metadata.json").read_text())
    assert meta["version"] == "0.1.0" and list(meta["changelog"]) == ["0.1.0"]
    assert list(meta)[:3] == ["schema", "version", "changelog"]
