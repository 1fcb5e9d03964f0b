"""``monai-app``: thin console commands over the bundles and ``monai_app`` functions.

Every command maps its flags onto a bundle's override keys; any further ``--key value`` pair passes through as a
config override (values are parsed as JSON when they can be, so ``--roi_size "[96,96,96]"`` works).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from monai_app.errors import UserInputError, message, quiet_user_errors, user_error

logger = logging.getLogger("monai_app")

EXAMPLES = {
    "list": ["monai-app list"],
    "synth": ["monai-app synth brats --out data/Task01_BrainTumour --cases 24",
              "monai-app synth brats --out data/BraTS2024-GLI --format brats2023 --resection-cavity",
              "monai-app synth brats --out data/BraTS-MET --format brats2023 --subchallenge MET",
              "monai-app synth brats --out data/BraTS-PED --format brats2024ped",
              "monai-app synth camvid --out data/CamVid --cases 48 --size 180 240"],
    "validate": ["monai-app validate brats_unet3d --dataset-dir data/Task01_BrainTumour",
                 "monai-app validate voc_unet2d --dataset-dir data/VOCdevkit"],
    "train": ["monai-app train brats_unet3d --dataset-dir data/Task01_BrainTumour --output-dir runs/brats "
              "--max-epochs 300",
              "monai-app train brats_unet3d --dataset-dir data/Task01_BrainTumour --output-dir runs/brats5 --folds all",
              "monai-app train camvid_unet2d --dataset-dir data/CamVid --output-dir runs/camvid --ignore_void true"],
    "evaluate": ["monai-app evaluate brats_unet3d --dataset-dir data/Task01_BrainTumour --output-dir runs/brats",
                 "monai-app evaluate brats_unet3d --dataset-dir data/Task01_BrainTumour --output-dir runs/brats5 "
                 "--ckpt runs/brats5"],
    "postprocess": ["monai-app postprocess brats_unet3d --dataset-dir data/Task01_BrainTumour --output-dir runs/brats"],
    "report": ["monai-app report runs/brats"],
    "infer": ["monai-app infer brats_unet3d --input data/Task01_BrainTumour/imagesTs --output-dir preds "
              "--ckpt runs/brats/models/model.pt",
              "monai-app infer brats_unet3d --input data/Task01_BrainTumour/imagesTs --output-dir preds5 "
              "--ckpt runs/brats5 --save-probabilities",
              "monai-app infer carvana_unet2d --input data/carvana/test --output-dir preds "
              "--ckpt runs/carvana/models/model.pt"],
    "export": ["monai-app export brats_unet3d --ckpt runs/brats/models/model.pt",
               "monai-app infer brats_unet3d --input case.nii.gz --output-dir preds "
               "--torchscript runs/brats/models/model.ts"],
    "package": ["monai-app package carvana_unet2d --run runs/carvana --out dist",
                "monai-app package brats_unet3d --run runs/brats --out dist --ckpt runs/brats/models/last.pt"],
    "score": ["monai-app score --pred preds --ref data/reference_labels --format msd --out scores",
              "monai-app score --pred preds --ref data/BraTS2024-GLI-Training --metrics brats2025 --workers 4 "
              "--out scores"],
}


def _epilog(*commands: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for c in commands or EXAMPLES for line in EXAMPLES[c])


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_overrides(extra: list[str]) -> dict[str, Any]:
    """``["--max_epochs", "5", "--roi-size", "[96,96,96]"]`` -> ``{"max_epochs": 5, "roi_size": [96, 96, 96]}``."""
    overrides, i = {}, 0
    while i < len(extra):
        arg = extra[i]
        if not arg.startswith("--") or len(arg) < 3:
            raise UserInputError(f"unexpected argument {arg!r}: overrides are given as --key value")
        key, _, value = arg[2:].partition("=")
        if not value:
            if i + 1 >= len(extra) or extra[i + 1].startswith("--"):
                raise UserInputError(f"override --{key} needs a value")
            value, i = extra[i + 1], i + 1
        overrides[key.replace("-", "_")] = _value(value)
        i += 1
    return overrides


def _run(args: argparse.Namespace, extra: list[str], run_id: str, flags: dict[str, str]) -> int:
    from monai_app.workflow import run_bundle

    overrides = {key: getattr(args, attr) for attr, key in flags.items() if getattr(args, attr, None) is not None}
    if isinstance(overrides.get("ckpt_path"), list) and len(overrides["ckpt_path"]) == 1:  # --ckpt a.pt
        overrides["ckpt_path"] = overrides["ckpt_path"][0]
    overrides.update(parse_overrides(extra))
    if getattr(args, "folds", None) or getattr(args, "fold", None) is not None:
        return _run_folds(args, run_id, overrides)
    workflow = run_bundle(args.bundle, run_id, overrides)
    out = Path(workflow.parser.get_parsed_content("output_dir")).resolve()
    if run_id == "training":
        print(f"\nrun folder: {out}\n  checkpoints: {out / 'models'}\n  TensorBoard: tensorboard --logdir {out / 'tb'}")
    elif run_id == "evaluating":
        print(f"\nper-case metrics: {out / 'eval' / 'per_case.csv'}\nsummary: {out / 'eval' / 'summary.json'}\n"
              f"report: {out / 'report.html'} (and report.md)")
    else:
        print(f"\npredictions: {out}")
    return 0


def _run_folds(args: argparse.Namespace, run_id: str, overrides: dict[str, Any]) -> int:
    """``--folds all`` / ``--folds 0 2`` / ``--fold 1``: the run of each fold in ``<output-dir>/fold_<f>``."""
    from monai_app.workflow import fold_dir, fold_numbers, run_folds

    if args.folds and args.fold is not None:
        raise UserInputError("give --folds or --fold, not both")
    folds = fold_numbers(args.bundle, args.folds or [args.fold], overrides.get("num_folds"),
                         "--folds" if args.folds else "--fold")
    run_folds(args.bundle, run_id, overrides, folds)
    root = Path(overrides["output_dir"]).resolve()
    what = "per-case metrics: {}/eval/per_case.csv" if run_id == "evaluating" else "run folder: {}"
    print("\n" + "\n".join(what.format(Path(fold_dir(root, f))) for f in folds))
    if run_id == "training" and len(folds) > 1:
        print(f"ensemble of the folds: monai-app infer {args.bundle} --ckpt {root} --input ... --output-dir ...")
    return 0


def cmd_train(args, extra):
    return _run(args, extra, "training", TRAIN_FLAGS)


def cmd_evaluate(args, extra):
    return _run(args, extra, "evaluating", {**TRAIN_FLAGS, "ckpt": "ckpt_path"})


def cmd_infer(args, extra):
    return _run(args, extra, "inference", INFER_FLAGS)


def cmd_postprocess(args, extra):
    from monai_app.metrics.postprocessing import format_table
    from monai_app.postprocess import run_postprocess

    flags = {**TRAIN_FLAGS, "ckpt": "ckpt_path"}
    overrides = {key: getattr(args, attr) for attr, key in flags.items() if getattr(args, attr, None) is not None}
    record = run_postprocess(args.bundle, {**overrides, **parse_overrides(extra)}, scoring=args.metrics)
    out = Path(args.output_dir).resolve()
    print(f"\n{record['metric']} on {record['n_validation_cases']} validation cases, before and after:\n"
          f"{format_table(record)}\nchosen: {record['description']}\nsaved: {out / 'postprocessing.json'} "
          "(evaluate and infer apply it; --postprocessing_rules none turns it off)")
    return 0


def _synth_brats(args) -> str:
    from monai_app.synthetic.brats import write_brats

    fmt = args.format or "msd"
    ids = write_brats(args.out, cases=args.cases or 8, dataset_format=fmt, seed=args.seed, shape=tuple(args.shape),
                      test_cases=args.test_cases, progress=True, subchallenge=args.subchallenge,
                      resection_cavity=args.resection_cavity)
    kind = " ".join(filter(None, [args.subchallenge, "post-treatment" if args.resection_cavity else None]))
    return f"{len(ids)} synthetic {fmt}{f' ({kind})' if kind else ''} cases"


def _synth_carvana(args) -> str:
    from monai_app.synthetic.carvana import write_carvana

    ids = write_carvana(args.out, cars=args.cases or 4, test_cars=max(1, args.test_cases // 2), seed=args.seed,
                        size=tuple(args.size or (1280, 1918)), progress=True)
    return f"{len(ids)} synthetic Carvana training images ({args.cases or 4} cars)"


def _synth_camvid(args) -> str:
    from monai_app.synthetic.camvid import write_camvid

    layout = args.format or "seed"
    n = args.cases or 24
    ids = write_camvid(args.out, layout=layout, train=n, val=max(1, n // 4), test=max(1, n // 4), seed=args.seed,
                       size=tuple(args.size or (360, 480)), progress=True)
    return f"{sum(map(len, ids.values()))} synthetic CamVid images ({layout} layout)"


def _synth_voc(args) -> str:
    from monai_app.synthetic.voc import write_voc

    n = args.cases or 24
    ids = write_voc(args.out, train=n, val=max(1, n // 3), seed=args.seed, size=tuple(args.size or (375, 500)),
                    progress=True)
    return f"{sum(map(len, ids.values()))} synthetic Pascal VOC images (train.txt {len(ids['train'])}, val.txt " \
           f"{len(ids['val'])})"


def _synth_ccp(args) -> str:
    from monai_app.synthetic.ccp import write_ccp

    n = args.cases or 24
    ids = write_ccp(args.out, pixel_level=n, image_level=args.test_cases, seed=args.seed,
                    size=tuple(args.size or (832, 550)), progress=True)
    return f"{len(ids)} synthetic Clothing Co-Parsing photos with pixel-level labels (+{args.test_cases} tags only)"


SYNTH = {"brats": _synth_brats, "brats_unet3d": _synth_brats, "carvana": _synth_carvana,
         "carvana_unet2d": _synth_carvana, "camvid": _synth_camvid, "camvid_unet2d": _synth_camvid, "voc": _synth_voc,
         "voc_unet2d": _synth_voc,
         "ccp": _synth_ccp, "ccp_unet2d": _synth_ccp}


def cmd_synth(args, extra):
    if args.dataset not in SYNTH:
        names = ", ".join(n for n in SYNTH if "_" not in n)
        raise UserInputError(f"no synthetic writer for {args.dataset!r}; available: {names}")
    what = SYNTH[args.dataset](args)
    print(f"wrote {what} to {Path(args.out).resolve()}")
    return 0


def cmd_score(args, extra):
    from monai_app.config import log_summary
    from monai_app.metrics.folders import score_folders

    score_folders(args.pred, args.ref, args.format, args.out, scoring=args.metrics, workers=args.workers)
    log_summary(args.out)
    print(f"\nper-case metrics: {Path(args.out).resolve() / 'per_case.csv'}")
    return 0


def cmd_list(args, extra):
    from monai_app.config import bundles_dir

    for meta_path in sorted(bundles_dir().glob("*/configs/metadata.json")):
        meta = json.loads(meta_path.read_text())
        inputs = meta["network_data_format"]["inputs"]["image"]
        outputs = meta["network_data_format"]["outputs"]["pred"]
        layouts = "".join(f"\n    - {layout}" for layout in meta.get("data_layouts", []))
        print(f"{meta_path.parents[1].name}  (v{meta['version']})\n  task:    {meta['task']}\n"
              f"  input:   {inputs['num_channels']} channels: {', '.join(inputs.get('channel_def', {}).values())}\n"
              f"  output:  {outputs['num_channels']} channels: {', '.join(outputs.get('channel_def', {}).values())}\n"
              f"  data:    {meta.get('data_source', '')}\n  layouts:{layouts}\n")
    return 0


def cmd_validate(args, extra):
    from monai_app.dataset_check import format_validation, validate_dataset
    from monai_app.config import bundle_path

    result = validate_dataset(bundle_path(args.bundle).name, args.dataset_dir, dataset_format=args.dataset_format,
                              grouping_file=args.grouping_file)
    print(format_validation(result))
    return 0 if result.ok else 1


def cmd_report(args, extra):
    from monai_app.reports import write_report

    html, md = write_report(args.run_dir)
    print(f"report: {Path(html).resolve()}\n        {Path(md).resolve()}")
    return 0


def cmd_export(args, extra):
    from monai_app.export import export_bundle, format_export

    result = export_bundle(args.bundle, args.ckpt, out_dir=args.out_dir, formats=tuple(args.formats),
                           overrides=parse_overrides(extra), dynamic_spatial=not args.fixed_size)
    print(format_export(result))
    return 0


def cmd_package(args, extra):
    from monai_app.package import format_package, package_run

    print(format_package(package_run(args.bundle, args.run, args.out, ckpt=args.ckpt)))
    return 0


TRAIN_FLAGS = {"dataset_dir": "dataset_dir", "output_dir": "output_dir", "max_epochs": "max_epochs",
               "device": "device", "seed": "seed", "dataset_format": "dataset_format"}
INFER_FLAGS = {"input": "input", "output_dir": "output_dir", "ckpt": "ckpt_path", "torchscript": "torchscript_path",
               "device": "device", "save_probabilities": "save_probabilities",
               "dataset_format": "dataset_format"}


def _bundle_command(sub, name: str, func, help_: str, flags: list[tuple[str, type, str]]) -> None:
    p = sub.add_parser(name, help=help_, description=help_ + ". Extra --key value pairs override config keys.",
                       epilog=_epilog(name), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", help="bundle name (see `monai-app list`) or path to a bundle folder")
    for flag, type_, text in flags:
        p.add_argument(flag, type=type_, help=text)
    p.set_defaults(func=func)
    return p


def _fold_arguments(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--folds", nargs="+", metavar="F", help=f"{what} the cross-validation folds: all, or fold numbers "
                   "(0 2); each in <output-dir>/fold_<f>, one after another (brats_unet3d; --num_folds, default 5)")
    p.add_argument("--fold", help=f"{what} one fold, in <output-dir>/fold_<fold>")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monai-app", description="Train, evaluate and run MONAI segmentation "
                                     "bundles on datasets as downloaded.", epilog=_epilog(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    raw = {"formatter_class": argparse.RawDescriptionHelpFormatter}
    sub.add_parser("list", help="the bundles, their task, inputs, outputs and data layouts", epilog=_epilog("list"),
                   **raw).set_defaults(func=cmd_list)
    common = [("--dataset-dir", str, "the dataset folder as downloaded"), ("--output-dir", str, "the run folder"),
              ("--device", str, "cpu, cuda or cuda:N (default: cuda when available)"),
              ("--dataset-format", str, "BraTS: auto (default), msd, brats2021, brats2023 (2023-2025, also BraTS-PED "
               "2023) or brats2024ped (BraTS-PED 2024-2025)")]
    _fold_arguments(_bundle_command(sub, "train", cmd_train, "Train a bundle", common + [
        ("--max-epochs", int, "number of epochs"), ("--seed", int, "random seed (split and training)")]), "train")
    evaluate = _bundle_command(sub, "evaluate", cmd_evaluate, "Score a trained model on the held-out split", common)
    evaluate.add_argument("--ckpt", nargs="+", help="checkpoint: a run's models/model.pt (the default: <output-dir>/"
                          "models/model.pt) or models/last.pt; several files or a folder of fold runs: their ensemble")
    _fold_arguments(evaluate, "evaluate")
    post = sub.add_parser("postprocess", help="choose lesion post-processing (small lesions removed per region, "
                          "small ET as NETC) on a run's validation cases; evaluate and infer then apply it",
                          description="Choose lesion post-processing on a run's validation cases and save it as "
                          "<output-dir>/postprocessing.json. Extra --key value pairs override config keys.",
                          epilog=_epilog("postprocess"), **raw)
    post.add_argument("bundle", help="bundle name (brats_unet3d) or path to a bundle folder")
    post.add_argument("--output-dir", required=True, help="the run folder (the output_dir of train)")
    for flag, type_, text in [*(c for c in common if c[0] != "--output-dir"),
                              ("--ckpt", str, "checkpoint (default: <output-dir>/models/model.pt)")]:
        post.add_argument(flag, type=type_, help=text)
    post.add_argument("--metrics", default="brats2023", choices=["brats2021", "brats2023", "brats2025"],
                      help="the scores to raise: brats2023 (default: the 2023 lesion-wise Dice), brats2025 or "
                      "brats2021 (whole-volume Dice)")
    post.set_defaults(func=cmd_postprocess)
    infer = _bundle_command(sub, "infer", cmd_infer, "Segment a file or a folder of cases", [
        ("--input", str, "an image file, a folder of them, or BraTS case folders"),
        ("--output-dir", str, "where <case_id>.nii.gz (3-D) or <case_id>.png (2-D) label maps are written"),
        ("--torchscript", str, "a TorchScript file from `monai-app export` to run instead of --ckpt"),
        ("--device", str, "cpu, cuda or cuda:N"),
        ("--dataset-format", str, "label convention to write: auto (default: the input's), msd, brats2021, "
         "brats2023 or brats2024ped")])
    infer.add_argument("--ckpt", nargs="+", help="checkpoint: a run's models/model.pt (best weights) or "
                       "models/last.pt; several files, or a folder of fold runs (train --folds), run as an ensemble "
                       "(mean probability)")
    infer.add_argument("--save-probabilities", action="store_true", default=None, help="brats_unet3d: also write "
                       "the probability maps (WT, TC, ET [, RC]) as <output-dir>/probabilities/<case_id>.nii.gz")
    synth = sub.add_parser("synth", help="write a synthetic dataset in a real on-disk layout",
                           epilog=_epilog("synth"), **raw)
    synth.add_argument("dataset", help="brats, carvana, camvid, voc or ccp (or a bundle name)")
    synth.add_argument("--out", required=True, help="folder to write")
    synth.add_argument("--cases", type=int, help="labelled cases: BraTS cases (default 8), Carvana cars of 16 views "
                       "(default 4), CamVid / VOC training images, CCP pixel-level photos (default 24)")
    synth.add_argument("--test-cases", type=int, default=2, help="unlabelled cases (default 2; CCP: photos with "
                       "image-level tags only)")
    synth.add_argument("--format", help="layout: msd (default), brats2021, brats2023 (BraTS 2023-2025) or "
                       "brats2024ped (BraTS-PED 2024-2025, with cystic components); CamVid: seed (default) or segnet")
    synth.add_argument("--subchallenge", choices=["GLI", "MEN", "MET", "SSA", "GoAT"],
                       help="BraTS --format brats2023: the sub-challenge of the case ids BraTS-<code>-NNNNN-000 "
                       "(default GLI); MET writes 3-12 small metastases per case instead of a glioma")
    synth.add_argument("--resection-cavity", action="store_true", help="BraTS --format brats2023: post-treatment "
                       "scans, a resection cavity (label 4) beside the tumour in most cases")
    synth.add_argument("--shape", type=int, nargs=3, default=[96, 96, 64], help="BraTS: approximate volume size")
    synth.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                       help="2-D image size (default: the real data's: 1280 1918 Carvana, 360 480 CamVid, 375 500 "
                       "VOC, 832 550 CCP)")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(func=cmd_synth)
    validate = sub.add_parser("validate", help="check a dataset folder before training: every case read, every "
                              "problem listed", epilog=_epilog("validate"), **raw)
    validate.add_argument("bundle", help="bundle name (see `monai-app list`)")
    validate.add_argument("--dataset-dir", required=True, help="the dataset folder as downloaded")
    validate.add_argument("--dataset-format", help="auto (default); BraTS: msd, brats2021, brats2023 or brats2024ped; "
                          "Carvana masks: gif or csv; CamVid: seed or segnet")
    validate.add_argument("--grouping-file", help="CCP: the grouping JSON label_list.mat is checked against, as "
                          "training's --grouping_file (default: the bundle's configs/ccp_59_to_14.json)")
    validate.set_defaults(func=cmd_validate)
    report = sub.add_parser("report", help="write report.html and report.md of a run folder (curves, metric "
                            "tables, best and worst cases)", epilog=_epilog("report"), **raw)
    report.add_argument("run_dir", help="a run folder (the output_dir of train / evaluate)")
    report.set_defaults(func=cmd_report)
    export = sub.add_parser("export", help="export a checkpoint to TorchScript and ONNX, each checked against "
                            "PyTorch", description="Export a checkpoint to TorchScript and ONNX. Extra --key value "
                            "pairs override config keys (e.g. --features for a non-default network).",
                            epilog=_epilog("export"), **raw)
    export.add_argument("bundle", help="bundle name (see `monai-app list`) or path to a bundle folder")
    export.add_argument("--ckpt", required=True, help="the checkpoint to export: a run's models/model.pt (best "
                        "weights) or models/last.pt")
    export.add_argument("--out-dir", help="where model.ts, model.onnx and export.json go (default: beside --ckpt)")
    export.add_argument("--formats", nargs="+", default=["torchscript", "onnx"], choices=["torchscript", "onnx"])
    export.add_argument("--fixed-size", action="store_true", help="ONNX: fixed spatial size (the bundle's patch "
                        "size) instead of dynamic axes, for runtimes that want static shapes")
    export.set_defaults(func=cmd_export)
    package = sub.add_parser("package", help="a trained and evaluated run as a self-contained MONAI bundle folder "
                             "and zip (weights, TorchScript, ONNX, model card), in the Model Zoo's layout",
                             epilog=_epilog("package"), **raw)
    package.add_argument("bundle", help="bundle name (see `monai-app list`) or path to a bundle folder")
    package.add_argument("--run", required=True, help="the run folder (the output_dir of train and evaluate)")
    package.add_argument("--out", required=True, help="where <bundle>/ and <bundle>_v<version>.zip are written")
    package.add_argument("--ckpt", help="the weights to package (default: <run>/models/model.pt, the best; "
                         "models/last.pt also works)")
    package.set_defaults(func=cmd_package)
    score = sub.add_parser("score", help="score a folder of label maps against references (BraTS Dice, HD95, "
                           "lesion-wise scores)", epilog=_epilog("score"), **raw)
    score.add_argument("--pred", required=True, help="folder of predicted label maps <case_id>.nii[.gz]")
    score.add_argument("--ref", required=True, help="folder of reference label maps (<case_id>[-seg].nii[.gz]), or "
                       "a BraTS 2023-2025 dataset folder as downloaded (case folders with -seg files)")
    score.add_argument("--format", default="auto", help="label convention: auto (default: from BraTS 2023-2025 file "
                       "names), msd, brats2021, brats2023 or brats2024ped")
    score.add_argument("--metrics", choices=["brats2021", "brats2023", "brats2025"], help="scoring convention: "
                       "brats2021 (whole-volume Dice and HD95; default for msd and brats2021), brats2023 (the 2023 "
                       "lesion-wise rule) or brats2025 (the official BraTS-evaluation package; default for "
                       "brats2023 and brats2024ped)")
    score.add_argument("--workers", type=int, default=1, help="cases scored in parallel (default 1)")
    score.add_argument("--out", required=True, help="folder for per_case.csv, summary.json and scoring.json")
    score.set_defaults(func=cmd_score)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command in ("list", "synth", "score", "validate", "report", "package"):
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(levelname)s %(message)s")
    if not args.debug:
        quiet_user_errors()
    try:
        return args.func(args, extra)
    except KeyboardInterrupt:
        print("monai-app: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `monai-app list | head`: the reader left; not an error of ours
        sys.stdout = open(os.devnull, "w")
        return 0
    except Exception as exc:
        problem = user_error(exc)
        if problem is None or args.debug:
            raise
        print(f"monai-app: error: {message(problem)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
