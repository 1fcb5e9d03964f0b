"""Sliding-window inference on one BraTS-size case (240 x 240 x 155 x 4 float32 .nii.gz), end to end and per stage.

    python scripts/bench_inference.py [--quick] [--device cpu|cuda] [--repeats 3] [--ckpt model.pt] [--no-compile]
    python scripts/bench_inference.py --ckpt model.pt --accuracy MSD_DIR     # Dice vs true labels, no timings

Pipelines (see bench_pipelines.py), run in interleaved rounds so machine load affects all alike:
  reference        plain MONAI as the tutorials write it: LoadImaged, EnsureChannelFirstd, Orientationd(RAS),
                   Spacingd(1 mm), NormalizeIntensityd(nonzero, channel_wise), sliding_window_inference with MONAI's
                   defaults (overlap 0.25, constant blending) and sw_batch_size 1, sigmoid > 0.5, Invertd, SaveImaged.
  project ...      brats_unet3d's inference.json, its components parsed by MONAI's ConfigWorkflow (so this stays in
                   sync with the config) and run stage by stage; "(workflow)" rows run the whole bundle workflow
                   (DataLoader, SupervisedEvaluator, handlers) in-process and are timed as a whole.
  previous         inference.json with the defaults it had before BENCHMARKS.md's changes (bench_pipelines.PREVIOUS:
                   overlap 0.5, Gaussian blending).
Then variants of the sliding-window stage alone, each on the same preprocessed volume: sw_batch_size, overlap,
blending, CropForegroundd, bf16 autocast, channels-last, CPU threads, torch.compile (compile time reported apart);
the seconds of every transform; what reading is bound by; the issue's targets.

Every output is scored against the reference's with Dice per BraTS region (WT / TC / ET) inside the brain, each
output read as a label map (ET over TC over WT); with ``--ckpt`` also against the synthetic case's true label.
Without ``--ckpt`` the network is the bundle's UNet randomly initialised with seed 0 (agreement, not accuracy).
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from bench_common import base_parser, clock, describe_machine, dice, finish, med, parse, spread, table, write_brats_case
from bench_pipelines import (PREVIOUS, PREVIOUS_TEXT, QUICK, REFERENCE_SETTINGS, Pipeline, crop_overrides,
                             label_regions, load_network, output_regions, project_pipeline, reference_pipeline, run_variant,
                             run_workflow, score, variants, warm_up)

STAGES = ("read", "preprocess", "sliding window", "postprocess", "write")


def main_rounds(pipelines: list[Pipeline], flows: dict[str, tuple], item: dict, repeats: int) -> dict:
    """Interleaved rounds: every pipeline and workflow once per round, the order rotated from round to round (so no
    row always follows the same one); returns the timings of each by name."""
    results: dict[str, dict] = {p.name: {"times": [], "mem": []} for p in pipelines}
    results.update({name: {"times": [], "mem": []} for name in flows})
    jobs = [(p.name, lambda p=p: p.run(item)) for p in pipelines]
    jobs += [(name, lambda args=args: run_workflow(*args)) for name, args in flows.items()]
    for r in range(repeats):
        for name, job in jobs[r % len(jobs):] + jobs[: r % len(jobs)]:  # each round starts one row later
            times, gb = job()
            results[name]["times"].append(times)
            results[name]["mem"].append(gb)
        print(f"# round {r + 1}/{repeats} done", flush=True)
    return results


def main_table(results: dict, outputs: dict[str, Path], ref_name: str, brain, truth) -> dict[str, float]:
    """Print the end-to-end table; return the median total of each row."""
    ref = output_regions(outputs[ref_name])
    totals = {name: med([t["total"] for t in res["times"]]) for name, res in results.items()}
    rows = []
    for name, res in results.items():
        stages = [spread([t[s] for t in res["times"] if s in t]) for s in STAGES]
        regions = output_regions(outputs[name]) if name in outputs else None
        gpu = [t["gpu_gb"] for t in res["times"] if "gpu_gb" in t]
        rows.append([name, *stages, spread([t["total"] for t in res["times"]]),
                     f"{max(res['mem']):.2f}" + (f" / GPU {max(gpu):.2f}" if gpu else ""),
                     f"{totals[ref_name] / totals[name]:.2f}x",
                     score(regions, ref, brain, truth) if regions is not None else "same files as staged row"])
    table("End to end, one case: seconds, median (min-max) of the rounds",
          ["pipeline", *STAGES, "total", "peak memory (GB)", "speed vs reference", "Dice vs reference WT / TC / ET"],
          rows, "Peak memory: the resident high-water mark of this process (the workflow's DataLoader workers are "
                "not included; see Targets for a run that includes them).")
    return totals


def variant_table(pipes: tuple[Pipeline, Pipeline], item: dict, net: torch.nn.Module, roi, compile_net: bool,
                  repeats: int, ref: np.ndarray, brain: np.ndarray, truth) -> dict[str, float]:
    """Time each variant's sliding window on the same preprocessed volume (the bundle's defaults, or cropped to the
    brain by the second pipeline), interleaved; print the table."""
    data = [(p, p.preprocess(p.read(dict(item)))) for p in pipes]
    vs = variants(net, roi, compile_net)
    times: dict[str, list[float]] = {v["name"]: [] for v in vs}
    info: dict[str, tuple] = {}
    for _ in range(repeats):
        for v in vs + [vs[0]]:  # the defaults again at the end: how much the machine drifted meanwhile
            try:
                seconds, windows, regions, note = run_variant(*data[bool(v.get("crop"))], v, net)
            except Exception as exc:  # torch.compile can fail on a machine without a working compiler
                info.setdefault(v["name"], (0, None, f"skipped: {type(exc).__name__}: {str(exc)[:80]}"))
                continue
            times[v["name"]].append(seconds)
            info[v["name"]] = (windows, regions, note)
    base = med(times[vs[0]["name"]])
    base_regions = info[vs[0]["name"]][1]
    rows = []
    for v in vs:
        windows, regions, note = info[v["name"]]
        ok = regions is not None
        rows.append([v["name"], windows, spread(times[v["name"]]),
                     f"{base / med(times[v['name']]):.2f}x" if ok else "-",
                     score(regions, base_regions, brain, None) if ok else "-",
                     score(regions, ref, brain, truth) if ok else "-", note])
    table("Sliding-window stage alone: variants of the bundle's defaults on the same preprocessed volume",
          ["variant", "windows", "seconds", "speed vs defaults", "Dice vs defaults", "Dice vs reference", "note"],
          rows, "Seconds: the sliding-window stage only (network, blending), median (min-max); the defaults row "
                "is timed first and last.")
    return {name: med(t) for name, t in times.items()}


def read_table(image: Path, repeats: int) -> None:
    """What bounds reading: gzip decompression vs NIfTI parsing, nibabel vs ITK, compressed vs not."""
    import gzip
    import shutil

    from monai.transforms import LoadImage

    plain = image.with_name(image.name.replace(".nii.gz", ".nii"))
    with gzip.open(image, "rb") as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst)
    cases = {"LoadImage, .nii.gz, NibabelReader (MONAI's default)": lambda: LoadImage(image_only=True)(str(image)),
             "LoadImage, .nii.gz, ITKReader": lambda: LoadImage(reader="ITKReader", image_only=True)(str(image)),
             "gzip decompression alone (Python gzip)": lambda: gzip.open(image, "rb").read(),
             "LoadImage, same data uncompressed .nii": lambda: LoadImage(image_only=True)(str(plain))}
    times: dict[str, list[float]] = {k: [] for k in cases}
    for fn in cases.values():  # warm-up: the first ITK call loads its libraries
        fn()
    for _ in range(repeats):
        for name, fn in cases.items():
            times[name].append(clock(fn)[0])
    plain.unlink()
    table("Reading the case: what the read stage is bound by", ["reader", "seconds"],
          [[name, spread(t)] for name, t in times.items()],
          f"{image.name}: {image.stat().st_size / 2**20:.0f} MiB compressed.")


def targets(totals: dict[str, float], names: dict[str, str], peak_gb: float, workers_gb: float,
            dice_ok: str) -> None:
    """Print the issue's targets with the measured figures."""
    ref = totals[names["ref"]]
    rows = [["project path at the reference's settings is not slower (ratio >= 1.0)",
             f"{ref / totals[names['same']]:.2f}x staged, {ref / totals[names['same_wf']]:.2f}x workflow"],
            ["project defaults >= 1.5x faster than the reference", f"{ref / totals[names['default']]:.2f}x staged, "
             f"{ref / totals[names['default_wf']]:.2f}x workflow"],
            [f"{PREVIOUS_TEXT}, for comparison",
             f"{ref / totals[names['previous']]:.2f}x staged, {ref / totals[names['previous_wf']]:.2f}x workflow"],
            ["... at equal Dice (within 0.005 of the reference's output)", dice_ok],
            ["peak memory of one case <= 3 GB", f"{peak_gb:.2f} GB (largest row, one process); {workers_gb:.2f} GB "
             "(defaults workflow with its DataLoader workers, proportional set sizes summed)"]]
    table("Targets", ["target", "measured"], rows)


def equal_dice(outputs: dict[str, Path], name: str, ref_name: str, brain, truth) -> str:
    """Whether ``name``'s output is within 0.005 Dice of the reference's output (and of its Dice vs the truth)."""
    ref, regions = output_regions(outputs[ref_name]), output_regions(outputs[name])
    agree = dice(regions & brain, ref & brain)
    text = f"Dice vs reference output min {min(agree):.4f} ({'met' if min(agree) >= 0.995 else 'not met'})"
    if truth is not None:
        gap = max(abs(a - b) for a, b in zip(dice(regions & brain, truth), dice(ref & brain, truth)))
        text += f"; Dice vs truth differs by at most {gap:.4f} ({'met' if gap <= 0.005 else 'not met'})"
    return text


def transform_table(p: Pipeline, item: dict, repeats: int) -> None:
    """Seconds of every transform of one pipeline (read, preprocessing, postprocessing, writer), median of
    ``repeats``: which of them bound the stages around the sliding window."""
    steps = [("read", t) for t in p.read.transforms] + [("preprocess", t) for t in p.preprocess.transforms]
    post = [("postprocess", t) for t in p.post.transforms] + [("write", p.write)]
    times: dict[int, list[float]] = {}
    d = p.preprocess(p.read(dict(item)))
    out = p.infer(d)
    for _ in range(repeats):
        d = dict(item)
        for i, (_, t) in enumerate(steps):
            seconds, d = clock(lambda: t(d), p.device)
            times.setdefault(i, []).append(seconds)
        d = copy.deepcopy(out)
        for i, (_, t) in enumerate(post, start=len(steps)):
            seconds, d = clock(lambda: t(d), p.device)
            times.setdefault(i, []).append(seconds)
    rows = [[stage, type(t).__name__, spread(times[i], digits=3)] for i, (stage, t) in enumerate(steps + post)]
    table(f"{p.name}: seconds per transform", ["stage", "transform", "seconds"], rows)


ACCURACY = ("defaults: sw_batch_size 4, overlap 0.25, constant", "overlap 0.5", "gaussian blending",
            "overlap 0.5, gaussian (previous defaults)", "CropForegroundd first (brain's bounding box)",
            "bf16 autocast (CPU) / fp16 (CUDA)")


def accuracy_table(folder: str, pipes: tuple[Pipeline, Pipeline], net: torch.nn.Module, roi) -> None:
    """Dice against the true labels of every labelled case of an MSD folder (``--accuracy``), for the variants
    that change the output (ACCURACY), with a trained ``--ckpt``: what each speed-up costs in accuracy; and Dice
    against the output at the reference's settings (the same as the reference's output, Table 1.2): how far each
    variant's output is from it with trained weights."""
    from monai_app.datasets.brats import find_cases

    cases = find_cases(folder, "msd", "train")
    vs = [v for v in variants(net, roi, False) if v["name"] in ACCURACY]
    vs.sort(key=lambda v: v["name"] != ACCURACY[0])  # the defaults (the reference's settings) first: the others are compared to them
    scores: dict[str, list[list[float]]] = {v["name"]: [] for v in vs}
    agree: dict[str, list[list[float]]] = {v["name"]: [] for v in vs}
    windows: dict[str, int] = {}
    for case in cases:
        item = {"image": case["image"], "case_id": case["case_id"]}
        data = [(p, p.preprocess(p.read(dict(item)))) for p in pipes]
        truth = label_regions(np.asanyarray(nib.load(case["label"]).dataobj))
        brain = (np.asanyarray(nib.load(case["image"]).dataobj) != 0).any(axis=-1)[None]  # input space
        for v in vs:
            _, n, regions, _ = run_variant(*data[bool(v.get("crop"))], v, net)
            scores[v["name"]].append(dice(regions, truth))
            if v["name"] == ACCURACY[0]:
                ref = regions
            agree[v["name"]].append(dice(regions & brain, ref & brain))
            windows[v["name"]] = windows.get(v["name"], 0) + n
    base = np.mean(scores[ACCURACY[0]], axis=0)
    rows = [[name, windows[name], " / ".join(f"{m:.4f}" for m in np.mean(s, axis=0)),
             " / ".join(f"{m:+.4f}" for m in np.mean(s, axis=0) - base),
             " / ".join(f"{m:.4f}" for m in np.mean(agree[name], axis=0)),
             " / ".join(f"{m:.4f}" for m in np.min(agree[name], axis=0))] for name, s in scores.items()]
    table(f"Dice against the true labels, mean over the {len(cases)} labelled cases of {folder}",
          ["variant", "windows (all cases)", "Dice WT / TC / ET", "minus the reference's settings",
           "Dice vs the reference's output (mean)", "(lowest case)"], rows,
          "Dice vs the reference's output: against the output at the reference's settings (overlap 0.25, constant "
          "blending, identical to the plain-MONAI reference's output), inside the brain (non-zero input), per case; "
          "1.0 where both are empty.")


def parse_args():
    parser = base_parser(__doc__)
    parser.add_argument("--ckpt", default=None, help="bundle checkpoint (model.pt); default: random weights, seed 0")
    parser.add_argument("--case", default=None, help="a 4-channel .nii.gz to use instead of the synthetic case")
    parser.add_argument("--label", default=None, help="the label of --case (MSD numbers), scored with --ckpt")
    parser.add_argument("--accuracy", default=None, metavar="MSD_DIR",
                        help="only score the output-changing variants against the labels of this MSD folder's "
                             "labelled cases (with a trained --ckpt); no timings")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    parser.add_argument("--variant-repeats", type=int, default=1)
    return parse(parser)


def build(args, work: Path, image: Path, small: dict, roi: tuple[int, ...]):
    """The network, the staged pipelines (reference, defaults, reference settings, previous), the workflows, and
    the defaults with CropForegroundd (for the variants)."""
    net, ckpt = load_network(args.ckpt, args.device, work, small)
    warm_up(net, (1, 2, 4, 8), roi, args.device)
    same = {**small, **REFERENCE_SETTINGS}
    previous = {**small, **PREVIOUS}
    staged = [reference_pipeline(net, work / "ref", args.device, roi),
              project_pipeline("project defaults (sw 4, overlap 0.25, constant)", image, work / "default", ckpt, net,
                               args.device, small),
              project_pipeline("project at the reference's settings", image, work / "same", ckpt, net, args.device,
                               same),
              project_pipeline(PREVIOUS_TEXT, image, work / "previous", ckpt, net, args.device, previous)]
    flows = {"project defaults (workflow)": (image, work / "default_wf", ckpt, args.device, small),
             "project at the reference's settings (workflow)": (image, work / "same_wf", ckpt, args.device, same),
             f"{PREVIOUS_TEXT} (workflow)": (image, work / "previous_wf", ckpt, args.device, previous)}
    crop = project_pipeline("defaults + CropForegroundd", image, work / "crop", ckpt, net, args.device,
                            {**small, **crop_overrides()})
    return net, staged, flows, crop


def main() -> None:
    args = parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    small = QUICK if args.quick else {}
    roi = tuple(small.get("roi_size", (64, 64, 64)))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_inference_"))
    image, label_file = (Path(args.case), args.label) if args.case else \
        write_brats_case(work / "data", (48, 48, 40) if args.quick else (240, 240, 155))
    data = np.asanyarray(nib.load(str(image)).dataobj)
    print(describe_machine(args.device))
    weights = f"weights {args.ckpt}" if args.ckpt else "random weights (seed 0)"
    print(f"# accuracy of the output-changing variants on {args.accuracy}; {weights}" if args.accuracy else
          f"# case: {image.name}, {'x'.join(map(str, data.shape))} {data.dtype}; network: brats_unet3d's UNet, "
          f"{weights}; {repeats} round(s)" + (f"; quick: {QUICK}" if small else ""))
    item = {"image": str(image), "case_id": image.name[: -len(".nii.gz")]}
    net, staged, flows, crop = build(args, work, image, small, roi)
    if args.accuracy:
        accuracy_table(args.accuracy, (staged[1], crop), net, roi)
        return finish()
    results = main_rounds(staged, flows, item, repeats)
    outputs = {p.name: p.output_file(item["case_id"]) for p in staged}
    outputs.update({name: flow[1] / f"{item['case_id']}.nii.gz" for name, flow in flows.items()})
    brain = (data != 0).any(axis=-1)[None]
    truth = label_regions(np.asanyarray(nib.load(str(label_file)).dataobj)) if args.ckpt and label_file else None
    totals = main_table(results, outputs, staged[0].name, brain, truth)
    variant_table((staged[1], crop), item, net, roi, not (args.no_compile or args.quick), args.variant_repeats,
                  output_regions(outputs[staged[0].name]), brain, truth)
    transform_table(staged[1], item, repeats)
    read_table(image, repeats)
    names = {"ref": staged[0].name, "same": staged[2].name, "default": staged[1].name, "previous": staged[3].name,
             "same_wf": "project at the reference's settings (workflow)",
             "default_wf": "project defaults (workflow)", "previous_wf": f"{PREVIOUS_TEXT} (workflow)"}
    peak = max(max(r["mem"]) for r in results.values())
    workers_gb = run_workflow(*flows[names["default_wf"]], children=True)[1]
    targets(totals, names, peak, workers_gb, equal_dice(outputs, names["default"], names["ref"], brain, truth))
    finish()


if __name__ == "__main__":
    main()
