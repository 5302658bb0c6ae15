"""``RUN/hyperparameters.json``: what a run is reproduced from, and how ``--resume`` treats it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from core.objectives.kl import KLHyperparameters, kl_weight
from torch_impl.train import main

COMMON = ["--preset", "tiny", "--batch-size", "4", "--no-progress", "--samples", "4", "--log-level", "WARNING"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("settings") / "run"
    assert main(["--model", "vae", "--seed", "3", "--kl-schedule", "cyclical", "--steps", "2", "--out", str(root),
                 *COMMON]) == 0
    return root


def _copy(run: Path, tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def test_the_settings_file_holds_everything_a_rerun_needs(run):
    settings = json.loads((run / "hyperparameters.json").read_text())
    assert (settings["model"], settings["seed"], settings["batch_size"]) == ("vae", 3, 4)
    assert settings["schedule_steps"] == 2 and settings["data"] == "digits"
    assert settings["hyperparameters"]["kl_schedule"] == "cyclical"
    assert settings["hyperparameters"]["free_bits"] == 0.5  # the model's default (seed 004), resolved


def test_resume_keeps_the_planned_length_for_schedules(run, tmp_path):
    """Extending a run does not re-cut a cyclical KL schedule: it keeps the length it started with."""
    root = _copy(run, tmp_path)
    assert main(["--resume", "--steps", "4", "--out", str(root), "--no-progress", "--log-level", "WARNING"]) == 0
    settings = json.loads((root / "hyperparameters.json").read_text())
    assert settings["schedule_steps"] == 2 and settings["seed"] == 3
    history = json.loads((root / "train_state.json").read_text())["history"]
    hp = KLHyperparameters.from_dict({"kl_schedule": "cyclical"})
    assert [h["kl_weight"] for h in history] == pytest.approx([kl_weight(hp, s, 2) for s in range(4)])


def test_a_settings_file_missing_hyperparameters_is_refused(run, tmp_path, caplog):
    root = _copy(run, tmp_path)
    path = root / "hyperparameters.json"
    settings = json.loads(path.read_text())
    settings["hyperparameters"] = {}
    path.write_text(json.dumps(settings))
    caplog.set_level(logging.ERROR, logger="age.train")
    assert main(["--resume", "--steps", "3", "--out", str(root), "--no-progress"]) == 2
    assert "hyperparameters.json" in caplog.text and "are missing" in caplog.text and "kl_schedule" in caplog.text


def test_a_contradicting_flag_is_refused_by_name(run, tmp_path, caplog):
    root = _copy(run, tmp_path)
    caplog.set_level(logging.ERROR, logger="age.train")
    assert main(["--resume", "--steps", "3", "--out", str(root), "--kl-schedule", "linear", "--no-progress"]) == 2
    assert "--kl-schedule linear differs from the run's cyclical" in caplog.text


def test_a_run_without_a_settings_file_resumes_with_a_warning(run, tmp_path, caplog):
    root = _copy(run, tmp_path)
    (root / "hyperparameters.json").unlink()
    caplog.set_level(logging.WARNING, logger="age.train")
    assert main(["--model", "vae", "--resume", "--steps", "3", "--out", str(root), *COMMON]) == 0
    assert "no hyperparameters.json" in caplog.text
    assert json.loads((root / "hyperparameters.json").read_text())["schedule_steps"] == 3
