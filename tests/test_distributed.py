"""Each bundle's `configs/multi_gpu_train.json`: a bundle trained with torchrun (DDP), here 2 processes with Gloo on
the CPU.

What a user would notice if it broke: the run fails or hangs, rank 1 leaves a second TensorBoard run or its own
checkpoints, a validation metric computed on half of the cases (or a case counted twice), a run that does not
resume. The validation metric the 2-process run logs must equal a single-process evaluation of the saved best
model on the same (odd number of, so unevenly sharded) validation cases.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

BUNDLES = sorted(p.parent.parent.name for p in (REPO / "bundles").glob("*/configs/train.json"))
BRATS_TINY = {"channels": "[8,16,32,64]", "num_workers": 0, "sw_batch_size": 2}
TINY_2D = {"features": "[8,16,16,32,32,8]", "num_workers": 0, "image_size": 32, "batch_size": 4}


def layer(bundle: str) -> str:
    """The bundle's multi-GPU layer (the model zoo's name), relative to the repository."""
    return f"bundles/{bundle}/configs/multi_gpu_train.json"


def configs(*paths: str) -> str:
    """A ``--config_file`` list of several files."""
    return "[" + ",".join(f"'{p}'" for p in paths) + "]"


def run(cmd: list[str], overrides: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    for key, value in overrides.items():
        cmd += [f"--{key}", str(value)]
    # PYTHONFAULTHANDLER: a process that crashes prints every thread's Python stack into the failure message. A run
    # that hangs past `timeout` gets SIGABRT in its whole process group (torchrun and every rank), so each process
    # prints its stacks the same way, and the failure shows where each rank waits.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    with subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          start_new_session=True) as popen:
        try:
            stdout, stderr = popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGABRT)
            try:
                stdout, stderr = popen.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(popen.pid, signal.SIGKILL)
                stdout, stderr = popen.communicate()
            pytest.fail(f"{' '.join(cmd)} hung for {timeout:g} s; every process's stacks at SIGABRT:\n"
                        f"{stdout[-4000:]}\n{stderr[-12000:]}")
    proc = subprocess.CompletedProcess(cmd, popen.returncode, stdout, stderr)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return proc


def torchrun(bundle: str, **overrides) -> subprocess.CompletedProcess:
    """Train ``bundle`` with the layer in 2 processes, as the README tells users to."""
    files = configs(f"bundles/{bundle}/configs/train.json", layer(bundle))
    return run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", "-m",
                "monai.bundle", "run", "training", "--config_file", files], overrides)


def evaluate(bundle: str, **overrides) -> subprocess.CompletedProcess:
    """Evaluate the best model in one process (no layer)."""
    files = configs(f"bundles/{bundle}/configs/train.json", f"bundles/{bundle}/configs/evaluate.json")
    return run([sys.executable, "-m", "monai.bundle", "run", "evaluating", "--config_file", files], overrides)


def tb_scalar(tb_dir: Path, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values = []
    for events in sorted(tb_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        values += [e.value for e in acc.Scalars(tag)] if tag in acc.Tags()["scalars"] else []
    return values


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_rank_zero_outputs(out: Path) -> None:
    assert len(list((out / "tb").glob("events.out.tfevents.*"))) == 1, "TensorBoard must be written by rank 0 only"
    assert sorted(p.name for p in (out / "models").iterdir()) == ["last.pt", "model.pt"]
    assert (out / "settings.json").is_file() and (out / "split.json").is_file()


def test_a_hung_run_fails_with_the_stacks_of_its_processes():
    """The harness above: a run past its timeout is aborted, and the failure shows where it was waiting."""
    with pytest.raises(pytest.fail.Exception, match=r"(?s)hung for 2 s.*File \"<string>\", line 1"):
        run([sys.executable, "-c", "import time; time.sleep(60)"], {}, timeout=2)


# ------------------------------------------------------------------------------------ the layer, without running
def test_every_bundle_carries_the_same_multi_gpu_layer():
    """The five layers are one recipe: a change to one must be made to all (they are copies so that each bundle
    stands alone, as model-zoo bundles do)."""
    texts = {bundle: (REPO / layer(bundle)).read_text() for bundle in BUNDLES}
    assert len(texts) == 5 and len(set(texts.values())) == 1, sorted(texts)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_layer_overrides_keys_every_bundle_has_and_keeps_its_set_up(bundle):
    """The layer replaces `initialize` and `finalize` whole: each bundle's own items must still be in them, and
    every key it overrides inside the bundle must exist there (else the override would silently do nothing)."""
    from monai.bundle import ConfigParser

    train = ConfigParser.load_config_file(REPO / "bundles" / bundle / "configs" / "train.json")
    overrides = ConfigParser.load_config_file(REPO / layer(bundle))
    for part in ("initialize", "finalize"):
        assert set(train[part]) <= set(overrides[part]), f"{bundle}: {part} items missing from {layer(bundle)}"
    base = ConfigParser(train)
    for key in ("train#dataloader#shuffle", "train#trainer#train_handlers", "validate#dataloader",
                "validate#evaluator#val_handlers", "train#handlers", "validate#handlers", "tb_writer#_target_",
                "network", "network_def", "device"):
        assert key in base, f"{bundle}: train.json has no {key}"
    train_file = REPO / "bundles" / bundle / "configs" / "train.json"
    merged = ConfigParser.load_config_files([train_file, REPO / layer(bundle)])
    assert merged["train"]["dataloader"]["shuffle"] is False and merged["train"]["dataloader"]["sampler"]
    assert merged["validate"]["dataloader"]["sampler"] == "@validate#sampler"
    assert {k: v for k, v in merged["tb_writer"].items() if k != "_target_"} == \
        {k: v for k, v in train["tb_writer"].items() if k != "_target_"}


def test_other_ranks_keep_only_the_handlers_every_rank_needs(monkeypatch, tmp_path):
    import torch
    from monai.handlers import LrScheduleHandler, StatsHandler, TensorBoardStatsHandler, ValidationHandler

    from monai_app.engine import distributed
    from monai_app.engine.handlers import MetricColumns, ProgressDisplay

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    lr = LrScheduleHandler(torch.optim.lr_scheduler.StepLR(optimizer, 1))
    validation = ValidationHandler(interval=1)
    columns = MetricColumns({"val_mean_dice": "dice"}, [""])
    writer = distributed.summary_writer(log_dir=str(tmp_path / "rank0"))
    handlers = [ProgressDisplay(), lr, validation, StatsHandler(), TensorBoardStatsHandler(writer), columns]
    assert distributed.rank_zero_only(handlers) == handlers
    writer.close()
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    assert distributed.rank_zero_only(handlers) == [lr, validation, columns]
    null = distributed.summary_writer(log_dir=str(tmp_path / "rank1"))
    null.add_scalar("x", 1.0, 1)
    null.close()
    assert not (tmp_path / "rank1").exists(), "a SummaryWriter on rank 1 would add a second TensorBoard run"


def test_validation_cases_are_shared_out_once_each(monkeypatch):
    from monai_app.engine import distributed
    from monai_app.errors import UserInputError

    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    shares = []
    for rank in (0, 1):
        monkeypatch.setattr(distributed, "rank", lambda: rank)
        shares.append(list(distributed.validation_sampler(["a", "b", "c"])))
    assert shares == [[0, 2], [1]]
    with pytest.raises(UserInputError, match="validation split has 1 case"):
        distributed.validation_sampler(["a"])


def test_the_layer_without_torchrun_says_how_to_start_it(monkeypatch):
    from monai_app.engine import distributed
    from monai_app.errors import UserInputError

    for key in distributed.TORCHRUN_ENV:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(UserInputError, match="torchrun --nproc_per_node"):
        distributed.init_process_group()


FREED_BEFORE_SHUTDOWN = """
import atexit, os, socket, weakref
import torch
from monai_app.engine import distributed

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
alive = []
# registered first, so it runs last among the exit handlers: what is still alive when the interpreter shuts down
atexit.register(lambda: print("DDP alive at shutdown:", alive[0]() is not None))
distributed.init_process_group()
workflow = {"network": torch.nn.parallel.DistributedDataParallel(torch.nn.Conv3d(1, 2, 3))}
workflow["self"] = workflow  # engines and handlers refer to each other: only the cycle collector frees them
alive.append(weakref.ref(workflow["network"]))
workflow["network"](torch.zeros(1, 1, 8, 8, 8)).sum().backward()
distributed.destroy_process_group()
del workflow
"""


def test_ddp_network_is_freed_before_the_interpreter_shuts_down(tmp_path):
    """torch 2.13 may abort a process ("terminate called without an active exception", exit code -6) that still
    holds a DistributedDataParallel network when the interpreter shuts down: 11 of 40 two-process Gloo scripts whose
    network was only reachable through a reference cycle at exit, and once a finished 2-process bundle run in CI. A
    bundle's network is only reachable through reference cycles when the run ends; init_process_group has them freed
    at exit."""
    script = tmp_path / "freed.py"
    script.write_text(FREED_BEFORE_SHUTDOWN)
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DDP alive at shutdown: False" in proc.stdout, proc.stdout + proc.stderr[-3000:]


# ------------------------------------------------------------------------------------ 2 processes, end to end
@pytest.fixture(scope="module")
def brats_ddp(msd_tiny, tmp_path_factory) -> Path:
    """One epoch of BraTS in 2 processes: 2 training cases (1 a rank, batch 1), 3 validation cases (2 + 1)."""
    out = tmp_path_factory.mktemp("brats_ddp")
    torchrun("brats_unet3d", dataset_dir=msd_tiny, output_dir=out, max_epochs=1, val_interval=1, batch_size=1,
             val_fraction=0.5, **BRATS_TINY)
    return out


@pytest.mark.slow
def test_brats_ddp_writes_one_run_folder_from_rank_0(brats_ddp):
    import torch

    check_rank_zero_outputs(brats_ddp)
    last = torch.load(brats_ddp / "models" / "last.pt", weights_only=True)
    assert last["trainer"]["epoch_length"] == 1, "each rank should train on its half of the 2 training cases"
    assert not any(k.startswith("module.") for k in last["model"]), "checkpoints hold the network, not DDP's wrapper"
    split = json.loads((brats_ddp / "split.json").read_text())
    assert (len(split["train"]), len(split["validation"]), len(split["test"])) == (2, 3, 1)


@pytest.mark.slow
def test_brats_ddp_validation_dice_equals_one_process_evaluation(brats_ddp, msd_tiny):
    """The Dice the 2 ranks logged (gathered over 2 + 1 cases) is the single-process Dice of model.pt on the same
    3 cases: no case missing, none counted twice (DistributedSampler(even_divisible=False) pads nothing)."""
    evaluate("brats_unet3d", dataset_dir=msd_tiny, output_dir=brats_ddp, eval_split="validation", **BRATS_TINY)
    rows = read_rows(brats_ddp / "eval" / "per_case.csv")
    assert [r["case_id"] for r in rows] == json.loads((brats_ddp / "split.json").read_text())["validation"]
    regions = ["wt", "tc", "et"]
    per_case = [sum(float(r[f"dice_{k}"]) for k in regions) / 3 for r in rows]
    expected = sum(per_case) / len(per_case)
    logged = tb_scalar(brats_ddp / "tb", "val_mean_dice")
    print(f"\nval_mean_dice: 2 processes {logged}, 1 process {expected!r} (per case {per_case})")
    assert logged == [pytest.approx(expected, abs=1e-4)]
    for k in regions:
        mean = sum(float(r[f"dice_{k}"]) for r in rows) / len(rows)
        assert tb_scalar(brats_ddp / "tb", f"val_dice_{k}") == [pytest.approx(mean, abs=1e-4)], k
    # the check has power: counting any case twice (or leaving one out) would change the mean beyond the tolerance
    n = len(per_case)
    assert all(abs((expected * n + v) / (n + 1) - expected) > 1e-4 for v in per_case), per_case
    assert all(abs((expected * n - v) / (n - 1) - expected) > 1e-4 for v in per_case), per_case


@pytest.mark.slow
def test_brats_ddp_resumes_on_every_rank(brats_ddp, msd_tiny, tmp_path):
    import torch

    out = tmp_path / "run"
    shutil.copytree(brats_ddp, out, ignore=shutil.ignore_patterns("eval", "report*"))
    proc = torchrun("brats_unet3d", dataset_dir=msd_tiny, output_dir=out, max_epochs=2, val_interval=1,
                    batch_size=1, val_fraction=0.5, **BRATS_TINY)
    assert "resuming from" in proc.stdout + proc.stderr
    last = torch.load(out / "models" / "last.pt", weights_only=True)
    assert last["trainer"]["iteration"] == 2 * last["trainer"]["epoch_length"] == 2
    assert len(tb_scalar(out / "tb", "val_mean_dice")) == 2  # epoch 1 (first run) and epoch 2 (resumed), once each


@pytest.mark.slow
def test_camvid_trains_in_2_processes_with_the_one_process_class_metrics(tmp_path):
    """A 2-D bundle whose validation metrics are Ignite's confusion matrix and monai_app's ClassMetrics (per-image
    matrices gathered from the ranks): the mIoU of 2 processes (2 + 1 images) is that of one process."""
    from monai_app.synthetic.camvid import write_camvid

    data, out = tmp_path / "camvid", tmp_path / "run"
    write_camvid(data, layout="segnet", train=4, val=3, test=2, size=(36, 48), seed=4)
    torchrun("camvid_unet2d", dataset_dir=data, output_dir=out, max_epochs=1, val_interval=1, **TINY_2D)
    check_rank_zero_outputs(out)
    evaluate("camvid_unet2d", dataset_dir=data, output_dir=out, eval_split="validation", **TINY_2D)
    scores = json.loads((out / "eval" / "dataset_scores.json").read_text())
    assert scores["images"] == 3
    assert tb_scalar(out / "tb", "val_miou") == [pytest.approx(scores["miou"], abs=1e-4)]
    assert tb_scalar(out / "tb", "val_pixel_accuracy") == [pytest.approx(scores["pixel_accuracy"], abs=1e-4)]
