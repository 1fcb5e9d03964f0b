"""MONAI's experiment tracking (`--tracking mlflow`) on every bundle: MLflow gets the parameters, the loss (every
iteration and every epoch), the validation and evaluation metrics and the executed config, read back here through
``MlflowClient`` from a local SQLite store (MONAI 1.6 refuses MLflow's file store).

What a user would notice if it broke: a bundle that no longer starts with `--tracking mlflow`, a resumed training
that opens a second MLflow run or logs an epoch twice, an evaluation run left "running" (the next training would log
into it), a DDP run logged by each rank, TensorBoard losing its curves. Skipped without the `tracking` extra.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from conftest import REPO, bundle_run, tb_tags
from test_distributed import run as run_checked

pytest.importorskip("mlflow", reason="mlflow is not installed: pip install 'monai-app[tracking]'")
pytest.importorskip("sqlalchemy", reason="SQLAlchemy (MLflow's SQLite store) is not installed: "
                                         "pip install 'monai-app[tracking]'")

from mlflow.tracking import MlflowClient  # noqa: E402

BUNDLES = sorted(p.parent.parent.name for p in (REPO / "bundles").glob("*/configs/train.json"))
CARVANA = "bundles/carvana_unet2d/configs"
TINY_2D = {"features": "[8,16,16,32,32,8]", "num_workers": 0, "image_size": 32, "batch_size": 4}
BRATS_TINY = {"channels": "[8,16,32,64]", "num_workers": 0, "roi_size": "[32,32,32]", "batch_size": 1,
              "num_samples": 1, "sw_batch_size": 2, "val_interval": 1}


@pytest.fixture(autouse=True)
def no_telemetry(monkeypatch):
    """MLflow 3 reports usage to its makers unless told not to (README); the runs' subprocesses inherit this."""
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlruns.db'}"


def runs(uri: str) -> dict:
    """Every run of the store by name: (run, {metric: [(step, value), ...]}, artifact names)."""
    client = MlflowClient(tracking_uri=uri)
    found = {}
    for experiment in client.search_experiments():
        for r in client.search_runs([experiment.experiment_id]):
            history = {m: [(h.step, h.value) for h in client.get_metric_history(r.info.run_id, m)]
                       for m in r.data.metrics}
            found[r.info.run_name] = (r, history, sorted(a.path for a in client.list_artifacts(r.info.run_id)))
    return found


def ref(value: str) -> str:
    """A config reference as written in the files (MONAI keeps ``a#b`` as ``a::b``)."""
    return value.replace("::", "#")


def steps(history: dict, metric: str) -> list[int]:
    return sorted(step for step, _ in history[metric])


# ------------------------------------------------------------------------------- every bundle, without running
def _mlflow_handler(parser, handlers_id: str):
    """The handler MONAI's tracking appended to the list ``handlers_id``, instantiated."""
    from monai.handlers import MLFlowHandler

    items = parser[handlers_id]
    assert items[-1]["_target_"] == "MLFlowHandler", f"no tracking handler in {handlers_id}"
    handler = parser.get_parsed_content(f"{handlers_id}#{len(items) - 1}")
    assert isinstance(handler, MLFlowHandler), handler  # not _disabled_ (rank 0 of no process group)
    return handler


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory) -> str:
    return store(tmp_path_factory.mktemp("store"))


@pytest.mark.parametrize("bundle", BUNDLES)
def test_every_bundle_takes_monai_mlflow_settings(bundle, shared_store, tmp_path, monkeypatch):
    """MONAI's default tracking settings find the training, validation and evaluation engines of every bundle and
    their handlers resolve; only rank 0 keeps them under DDP."""
    from monai.bundle import ConfigWorkflow

    from monai_app.engine import distributed

    monkeypatch.setenv("MLFLOW_TRACKING_URI", shared_store)  # MLflow's own override: one store made for all
    configs = REPO / "bundles" / bundle / "configs"
    common = {"meta_file": str(configs / "metadata.json"), "logging_file": False, "workflow_type": "train",
              "tracking": "mlflow", "output_dir": str(tmp_path)}
    config = tmp_path / "train_config.json"
    train = ConfigWorkflow(config_file=str(configs / "train.json"), save_execute_config=str(config), **common)
    trainer = _mlflow_handler(train.parser, "train#handlers")
    validator = _mlflow_handler(train.parser, "validate#handlers")
    assert train.parser.get_parsed_content("tracking_uri") == store(tmp_path)  # <output_dir>/mlruns.db by default
    assert trainer.client.tracking_uri == validator.client.tracking_uri == shared_store
    assert trainer.close_on_complete and not validator.close_on_complete
    assert trainer.artifacts == (str(config),) and config.is_file()  # the executed config, exported by MONAI
    assert ref(train.parser["train#trainer#key_train_metric"]) == "@train#key_metric"  # the per-epoch loss
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    assert distributed.rank_zero_only([trainer, validator]) == []

    evaluation = ConfigWorkflow(config_file=[str(configs / "train.json"), str(configs / "evaluate.json")],
                                run_id="evaluating", **common)
    evaluator = _mlflow_handler(evaluation.parser, "handlers")  # MONAI's evaluation ids: evaluator, handlers
    assert evaluator.close_on_complete and evaluator.run_name == "evaluation"
    assert ref(evaluation.parser["validate#evaluator#val_handlers"]) == "$@handlers"
    assert "$@evaluator.run()" in evaluation.parser["evaluating"]


# ------------------------------------------------------------------------------------------------ tracked runs
@pytest.fixture(scope="module")
def cars(tmp_path_factory) -> Path:
    from monai_app.synthetic.carvana import write_carvana

    out = tmp_path_factory.mktemp("carvana") / "carvana"
    write_carvana(out, cars=5, views=4, test_cars=1, size=(48, 72), seed=2)  # 12 training images: 3 batches
    return out


@pytest.mark.slow
def test_a_stopped_training_resumes_into_its_mlflow_run_and_evaluation_gets_its_own(cars, tmp_path):
    from ignite.engine import Events

    from monai_app import cli
    from monai_app.errors import user_error
    from monai_app.workflow import make_workflow

    out, uri = tmp_path / "run", store(tmp_path)
    keys = {"dataset_dir": str(cars), "output_dir": str(out), "max_epochs": 2, "tracking_uri": uri, **TINY_2D}
    # SIGTERM in the first iteration of epoch 2, through monai-app's workflow (`tracking` as a pass-through key)
    workflow = make_workflow("carvana_unet2d", "training", {**keys, "features": [8, 16, 16, 32, 32, 8],
                                                            "tracking": "mlflow"})
    workflow.initialize()
    trainer = workflow.parser.get_parsed_content("train#trainer")
    trainer.add_event_handler(Events.ITERATION_COMPLETED(once=4), lambda e: os.kill(os.getpid(), signal.SIGTERM))
    with pytest.raises(Exception) as stopped:
        try:
            workflow.run()
        finally:
            workflow.finalize()
    assert "stopped by SIGTERM at epoch 2, iteration 4" in str(user_error(stopped.value))
    ((run, history, _),) = runs(uri).values()
    assert run.info.status == "RUNNING" and steps(history, "train/epoch_loss") == [1]

    config = out / "train_config.json"  # MONAI logs the executed config only when given a file (README)
    resumed = bundle_run("training", f"{CARVANA}/train.json", tracking="mlflow", save_execute_config=config, **keys)
    assert "resuming from" in resumed.stdout + resumed.stderr
    ((run, history, artifacts),) = runs(uri).values()  # the same MLflow run went on
    assert run.info.status == "FINISHED" and run.data.params == {"max_epochs": "2", "epoch_length": "3"}
    assert steps(history, "train_loss") == list(range(1, 7)) and steps(history, "lr_group_0") == list(range(1, 7))
    for metric in ("train/epoch_loss", "val_mean_dice", "val_dice_model_size"):
        assert steps(history, metric) == [1, 2], metric
    assert artifacts == ["train_config.json"]
    scalars, _ = tb_tags(out / "tb")  # TensorBoard is written as before
    assert {"train/loss", "train/lr", "train/epoch_loss", "val_mean_dice", "val_dice_model_size"} <= scalars

    tiny = [x for key, value in TINY_2D.items() for x in (f"--{key}", str(value))]
    # monai-app names the executed config itself (<output_dir>/<run>_config.json), so it is logged with no flag
    assert cli.main(["evaluate", "carvana_unet2d", "--dataset-dir", str(cars), "--output-dir", str(out), *tiny,
                     "--tracking", "mlflow", "--tracking_uri", uri]) == 0
    found = runs(uri)
    evaluation, history, artifacts = found.pop("evaluation")
    assert evaluation.info.status == "FINISHED" and artifacts == ["evaluating_config.json"]
    assert {"dice", "dice_model_size", "val_mean_dice"} <= set(history) and steps(history, "dice") == [1]
    ((run, _, _),) = found.values()  # the training run was left alone
    assert run.info.status == "FINISHED" and "dice" not in run.data.metrics


@pytest.mark.slow
def test_ddp_training_is_logged_once_by_rank_zero(cars, tmp_path):
    out, uri = tmp_path / "run", store(tmp_path)
    files = f"['{CARVANA}/train.json','{CARVANA}/multi_gpu_train.json']"
    run_checked([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", "-m",
                 "monai.bundle", "run", "training", "--config_file", files],
                {"dataset_dir": cars, "output_dir": out, "max_epochs": 2, "tracking": "mlflow", "tracking_uri": uri,
                 **TINY_2D})
    ((run, history, _),) = runs(uri).values()
    assert run.info.status == "FINISHED" and run.data.params["epoch_length"] == "2"  # 6 images a rank, batch 4
    assert steps(history, "train_loss") == [1, 2, 3, 4]  # rank 0's iterations, each once
    assert steps(history, "train/epoch_loss") == [1, 2] and steps(history, "val_mean_dice") == [1, 2]
    assert len(list((out / "tb").glob("events.out.tfevents.*"))) == 1


@pytest.mark.slow
def test_brats_training_logs_each_region(msd_tiny, tmp_path):
    out, uri = tmp_path / "run", store(tmp_path)
    bundle_run("training", "bundles/brats_unet3d/configs/train.json", dataset_dir=msd_tiny, output_dir=out,
               max_epochs=1, tracking="mlflow", tracking_uri=uri, run_name="brats", **BRATS_TINY)
    run, history, _ = runs(uri)["brats"]
    assert run.info.status == "FINISHED" and run.data.params == {"max_epochs": "1", "epoch_length": "4"}
    for metric in ("train/epoch_loss", "val_mean_dice", "val_dice_wt", "val_dice_tc", "val_dice_et"):
        assert steps(history, metric) == [1], metric
