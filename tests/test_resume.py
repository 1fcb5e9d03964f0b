"""Interrupted training resumes where it stopped; a NaN loss stops a run and keeps the last good checkpoint; the
same seed gives the same losses. Runs the real brats_unet3d bundle on the synthetic MSD dataset with a tiny network.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine, Events

from conftest import REPO
from monai_app.errors import TrainingStopped, user_error
from monai_app.workflow import make_workflow

pytestmark = pytest.mark.slow

TINY = {"channels": [8, 16, 32, 64], "num_workers": 0, "roi_size": [32, 32, 32], "batch_size": 1, "num_samples": 1,
        "val_interval": 1, "sw_batch_size": 2}
LR = 0.002


def _workflow(dataset: Path, out: Path, **overrides):
    workflow = make_workflow("brats_unet3d", "training", {"dataset_dir": str(dataset), "output_dir": str(out),
                                                           **TINY, **overrides})
    workflow.initialize()
    return workflow


def _run(workflow, on_iteration=None) -> list[float]:
    """Run a workflow; the loss of every iteration it ran."""
    trainer = workflow.parser.get_parsed_content("train#trainer")
    losses = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output[0]["loss"])))
    if on_iteration is not None:
        trainer.add_event_handler(Events.ITERATION_COMPLETED, on_iteration)
    try:
        workflow.run()
    finally:
        workflow.finalize()
    return losses


def _stopped(workflow, on_iteration=None) -> str:
    """Run a workflow that must stop on purpose; the message it stops with (MONAI wraps the exception)."""
    with pytest.raises(Exception) as info:
        _run(workflow, on_iteration)
    problem = user_error(info.value)
    assert isinstance(problem, TrainingStopped), info.value
    return str(problem)


def _last(out: Path) -> dict:
    return torch.load(out / "models" / "last.pt", weights_only=True)


def _cosine(epoch: int, max_epochs: int) -> float:
    """The learning rate CosineAnnealingLR gives for ``epoch`` (1-based) of ``max_epochs``."""
    return LR * (1 + math.cos(math.pi * (epoch - 1) / max_epochs)) / 2


def _lr_by_epoch(events: Path) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events))
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars("train/lr")}


def test_a_run_killed_mid_epoch_resumes_at_the_next_epoch_with_its_lr_schedule(msd_tiny, tmp_path):
    out, max_epochs = tmp_path / "run", 4
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file",
           "bundles/brats_unet3d/configs/train.json", "--dataset_dir", str(msd_tiny), "--output_dir", str(out),
           "--max_epochs", str(max_epochs)] + [x for k, v in TINY.items() for x in (f"--{k}", str(v).replace(" ", ""))]
    first = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (out / "models" / "last.pt").is_file():  # the first epoch is saved: kill it in the second
        assert first.poll() is None and time.time() < deadline, first.stderr.read()[-3000:] if first.stderr else ""
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL
    saved = _last(out)["trainer"]
    done = saved["iteration"] // saved["epoch_length"]
    assert saved["iteration"] % saved["epoch_length"] == 0 and 1 <= done < max_epochs, saved
    assert not [p for p in (out / "models").iterdir() if p.name not in ("last.pt", "model.pt")]  # no partial files
    first_events = set((out / "tb").glob("events.out.tfevents.*"))

    second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resuming from {out / 'models' / 'last.pt'}: epoch {done + 1}, iteration 0" in second.stdout + \
        second.stderr
    final = _last(out)
    assert final["trainer"]["iteration"] == max_epochs * saved["epoch_length"]
    assert final["lr_scheduler"]["last_epoch"] == max_epochs  # stepped once per epoch over both runs
    (resumed_events,) = set((out / "tb").glob("events.out.tfevents.*")) - first_events
    lrs = _lr_by_epoch(resumed_events)
    assert sorted(lrs) == list(range(done + 1, max_epochs + 1))  # only the remaining epochs ran
    for epoch, lr in lrs.items():  # the schedule went on from where it was, not from the start
        assert lr == pytest.approx(_cosine(epoch, max_epochs), rel=1e-5), (epoch, lrs)
    assert final["best_metric"]["epoch"] >= 1 and (out / "models" / "model.pt").is_file()


def test_sigterm_saves_mid_epoch_and_the_next_run_goes_on_from_that_iteration(msd_tiny, tmp_path):
    out = tmp_path / "run"
    stop_at = 6  # the second iteration of the second epoch (4 training cases, batch 1)

    def terminate(engine):
        if engine.state.iteration == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler (Slurm, Kubernetes) stops a job

    text = _stopped(_workflow(msd_tiny, out, max_epochs=3), terminate)
    assert text.startswith(f"stopped by SIGTERM at epoch 2, iteration {stop_at}; saved {out / 'models' / 'last.pt'}")
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is removed with the run
    saved = _last(out)
    assert saved["trainer"]["iteration"] == stop_at and saved["lr_scheduler"]["last_epoch"] == 1

    losses = _run(_workflow(msd_tiny, out, max_epochs=3))
    assert len(losses) == 3 * 4 - stop_at  # the rest of epoch 2, then epoch 3
    final = _last(out)
    assert final["trainer"]["iteration"] == 12 and final["lr_scheduler"]["last_epoch"] == 3


def test_resume_false_starts_again_and_a_finished_run_is_not_retrained(msd_tiny, tmp_path):
    out = tmp_path / "run"
    assert len(_run(_workflow(msd_tiny, out, max_epochs=1))) == 4
    assert _run(_workflow(msd_tiny, out, max_epochs=1)) == []  # already done: nothing to train
    assert len(_run(_workflow(msd_tiny, out, max_epochs=2))) == 4  # one more epoch
    assert len(_run(_workflow(msd_tiny, out, max_epochs=1, resume=False))) == 4
    assert _last(out)["trainer"]["iteration"] == 4


class NanAfter:
    """The bundle's loss, until call ``n``: from then on NaN (as an exploding learning rate would make it)."""

    def __init__(self, loss, n: int) -> None:
        self.loss, self.n, self.calls = loss, n, 0

    def __call__(self, pred, label):
        self.calls += 1
        value = self.loss(pred, label)
        return value * float("nan") if self.calls >= self.n else value


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(msd_tiny, tmp_path):
    from monai.losses import DiceFocalLoss

    out = tmp_path / "run"
    loss = NanAfter(DiceFocalLoss(sigmoid=True, batch=True), n=6)
    text = _stopped(_workflow(msd_tiny, out, max_epochs=3, loss=loss))
    assert text.startswith(f"the loss became nan at epoch 2, iteration 6: training stopped and the last good "
                           f"checkpoint {out / 'models' / 'last.pt'} is kept"), text
    saved = _last(out)
    assert saved["trainer"]["iteration"] == 4  # epoch 1, not the NaN epoch
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())


def test_the_same_seed_gives_the_same_first_epoch_losses_on_cpu(msd_tiny, tmp_path):
    runs = [_run(_workflow(msd_tiny, tmp_path / f"run{i}", max_epochs=1, seed=seed, num_workers=nw))
            for i, (seed, nw) in enumerate([(7, 2), (7, 2), (8, 2)])]
    assert len(runs[0]) == 4 and all(math.isfinite(v) for v in runs[0])
    assert runs[0] == runs[1]  # bit for bit, with two loader worker processes (set here: by default there are
    # none on <= 2 cores, see monai_app.config.default_workers)
    assert runs[0] != runs[2]  # and the seed matters


def test_a_resumed_best_saver_replaces_model_pt_only_with_a_better_model(tmp_path):
    """The best score ``last.pt`` keeps goes back into MONAI's ``CheckpointSaver`` (set up as the bundles' best_saver)
    through Ignite's public ``Checkpoint.state_dict`` / ``load_state_dict``: a worse model leaves model.pt alone, a
    better one replaces it."""
    from monai.handlers import CheckpointSaver

    from monai_app.engine.checkpoints import BEST, best_saver_state

    net = torch.nn.Linear(2, 1)
    saver = CheckpointSaver(save_dir=str(tmp_path), save_dict={"model": net}, save_key_metric=True,
                            key_metric_name="dice", key_metric_filename=BEST)
    (tmp_path / BEST).write_bytes(b"the best model of the stopped run")
    saver.load_state_dict(best_saver_state(0.8))
    evaluator = Engine(lambda engine, batch: None)
    evaluator.state.metrics = {"dice": 0.7}
    saver.metrics_completed(evaluator)
    assert (tmp_path / BEST).read_bytes() == b"the best model of the stopped run"  # 0.7 < 0.8: kept
    evaluator.state.metrics = {"dice": 0.9}
    saver.metrics_completed(evaluator)
    assert torch.load(tmp_path / BEST, weights_only=True).keys() == net.state_dict().keys()  # replaced
    assert [p.name for p in tmp_path.iterdir()] == [BEST]
