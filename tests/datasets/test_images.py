"""Finding 2-D images to segment: a file or a folder, resuming a folder, and clear errors."""

from __future__ import annotations

import pytest
from PIL import Image

from monai_app.datasets.images import find_images
from monai_app.errors import DatasetError


@pytest.fixture()
def folder(tmp_path):
    for name in ("b.jpg", "a.png", "c.GIF"):
        Image.new("RGB", (4, 3)).save(tmp_path / name)
    (tmp_path / "._a.png").write_bytes(b"macOS resource fork")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_a_folder_gives_its_images_sorted_by_id(folder):
    cases = find_images(folder)
    assert [c["case_id"] for c in cases] == ["a", "b", "c"]
    assert find_images(folder / "b.jpg") == [{"case_id": "b", "image": str(folder / "b.jpg")}]


def test_skip_existing_resumes_a_folder(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    (out / "a.png").write_bytes(b"done")
    assert [c["case_id"] for c in find_images(folder, out, skip_existing=True)] == ["b", "c"]
    assert len(find_images(folder, out, skip_existing=False)) == 3


def test_bad_inputs_are_named(folder, tmp_path_factory):
    with pytest.raises(DatasetError, match="does not exist"):
        find_images(folder / "missing")
    with pytest.raises(DatasetError, match="notes.txt: not an image file"):
        find_images(folder / "notes.txt")
    with pytest.raises(DatasetError, match="no images found"):
        find_images(tmp_path_factory.mktemp("empty"))
    Image.new("RGB", (4, 3)).save(folder / "a.jpg")
    with pytest.raises(DatasetError, match="two images are named 'a'"):
        find_images(folder)
