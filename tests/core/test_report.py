"""``python -m core.report``: seed 004's report preset, and a tiny end-to-end report in torch."""

from __future__ import annotations

import json
import math
import re

import pytest

from core.errors import ConfigError
from core.registry import MODELS, get_model_spec
from core.report import IMAGES, LOGS, README, RUNS, SUMMARY, build_report, load_preset, main

REPORT = load_preset("seed_004")
SEED_FIGURES = {"ae_loss.png", "vae_flows_loss.png", "gan_loss.png", "ae.png", "vae.png", "vae_flow.png", "gan.png"}


def test_preset_models_are_registered_and_figures_plot_logged_losses():
    assert {r.model for r in REPORT.runs} == {"conv_ae", "vae", "flow_vae", "mlp_gan"}
    assert set(REPORT.figures) == SEED_FIGURES
    for spec in REPORT.runs:
        assert spec.model in MODELS
    for figure in REPORT.loss_figures:
        assert figure.losses
        for series in figure.losses:
            objective = get_model_spec(REPORT.run(series.run).model).objective
            assert series.key in {k for u in objective.updates for k in u.logs}, (figure.file, series)
    for grid in REPORT.grid_figures:
        assert grid.source in ("reconstructions", "samples")


def test_step_sized_flags_are_trainer_flags():
    """What a run sizes to its length (the KL warm-up) is one of its trainer's generated flags."""
    from core.cli import hyperparameter_fields

    for spec in REPORT.runs:
        names = {f.name for f in hyperparameter_fields(spec.model)}
        assert set(spec.step_flags) <= names, spec.key


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("report")
    summary = build_report("torch", out, preset="tiny", steps=3)
    return out, summary


def test_tiny_report_writes_every_figure(tiny_report):
    from PIL import Image

    out, _ = tiny_report
    for name in SEED_FIGURES:
        path = out / IMAGES / name
        assert path.is_file(), name
        assert 1_000 < path.stat().st_size < 2_000_000, name
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            assert im.format == "PNG" and im.width >= 16 and im.height >= 16, name
    for spec in REPORT.runs:
        assert list((out / LOGS / spec.key).glob("events.out.tfevents.*")), spec.key
        assert (out / RUNS / spec.key / "hyperparameters.json").is_file()


def test_tiny_report_readme_names_figures_and_tabulates_runs(tiny_report):
    out, summary = tiny_report
    readme = (out / README).read_text()
    for name in SEED_FIGURES:
        assert f"./{IMAGES}/{name}" in readme, name
    assert f"tensorboard --logdir {out.as_posix()}/{LOGS}" in readme
    results = readme.split("## Results", 1)[1].split("\n## ", 1)[0]
    for spec in REPORT.runs:
        rows = [line for line in results.splitlines() if line.startswith(f"| `{spec.key}` |")]
        assert len(rows) == 1, spec.key
        cells = [c.strip() for c in rows[0].strip("|").split("|")]
        assert int(cells[1]) == 3  # steps
        numbers = [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", " ".join(cells[2:]))]
        assert len(numbers) >= 4 and all(math.isfinite(x) for x in numbers), rows[0]
    # the KL warm-up is sized to the run and the hyperparameters come from the runs' files
    assert json.loads((out / RUNS / "vae" / "hyperparameters.json").read_text())["hyperparameters"]["kl_warmup"] == 2
    assert "`kl_warmup`=2" in readme
    stored = json.loads((out / SUMMARY).read_text())
    assert set(stored["runs"]) == {r.key for r in REPORT.runs}
    for run in stored["runs"].values():
        assert run["steps"] == 3 and run["wall_time_s"] > 0
        assert all(math.isfinite(v["final"]) for v in run["losses"].values())


def test_tiny_report_tabulates_sample_quality_above_the_real_vs_real_floor(tiny_report):
    """Every run is measured once, at its last step, at the same n as the floor; untrained models
    are far from the data, two halves of the data are not."""
    out, _ = tiny_report
    stored = json.loads((out / SUMMARY).read_text())
    quality = stored["sample_quality"]
    assert quality["n"] == REPORT.metrics_n == 1797 // 2
    assert quality["values"] == ["fid", "kid", "precision", "recall"]
    (floor,) = quality["floors"]
    assert floor["network"] == "digits" and floor["feature_dim"] == 128
    assert all(math.isfinite(v) for v in floor["values"].values())
    for spec in REPORT.runs:
        q = stored["runs"][spec.key]["sample_quality"]
        assert q["step"] == 3 and (q["image_size"], q["channels"]) == (floor["image_size"], floor["channels"])
        assert q["source"] == ("reconstructions" if get_model_spec(spec.model).prior == "none" else "samples")
        assert set(q["values"]) == set(quality["values"]) and all(math.isfinite(v) for v in q["values"].values())
        assert floor["values"]["fid"] < q["values"]["fid"], spec.key
        assert floor["values"]["kid"] < q["values"]["kid"], spec.key
        history = json.loads((out / RUNS / spec.key / "train_state.json").read_text())["history"]
        assert [h["step"] for h in history if "eval_fid" in h] == [3]
    assert 0.5 < floor["values"]["precision"] <= 1 and 0.5 < floor["values"]["recall"] <= 1
    # the floor's spread over other splits: real intervals, each holding values of its own draws
    assert floor["spread_splits"] >= 2 and set(floor["spread"]) == set(floor["values"])
    assert all(lo < hi for lo, hi in floor["spread"].values())

    section = (out / README).read_text().split("## Sample quality", 1)[1].split("\n## ", 1)[0]
    assert "digits network" in section and "128-d" in section and "n = 898" in section
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    assert len(rows) == len(REPORT.runs) + 1
    assert rows[0].startswith("| real vs real (floor) |")
    for row, spec in zip(rows[1:], REPORT.runs):
        cells = [c.strip() for c in row.strip("|").split("|")]
        q = stored["runs"][spec.key]["sample_quality"]
        assert cells[0] == f"`{spec.key}`" and cells[1].startswith(q["source"])
        assert float(cells[2]) == pytest.approx(q["values"]["fid"], rel=1e-3)
    lo, hi = floor["spread"]["fid"]
    assert f"FID {lo:.4g} to {hi:.4g}" in section and "noise of the draw" in section


def test_existing_report_is_refused_without_overwrite(tiny_report, capsys):
    out, _ = tiny_report
    assert main(["--framework", "torch", "--out", str(out), "--preset", "tiny", "--steps", "1"]) == 2
    assert main(["--framework", "torch", "--out", str(out), "--render-only"]) == 0
    assert (out / README).is_file()


def test_runs_and_figures_come_from_the_models_registrations(monkeypatch):
    """Each model's ReportRole adds its run, curves and grids; a curve for a figure the report does
    not draw is refused by name."""
    import dataclasses

    from core.report import FigureSeries, Series, gather

    preset = load_preset()
    roles = [r for spec in MODELS.values() for r in spec.reports if r.report == preset.name]
    assert sorted(r.run.key for r in roles) == sorted(r.key for r in preset.runs)
    assert [r.run.key for r in sorted(roles, key=lambda r: r.order)] == [r.key for r in preset.runs]
    drawn = {(f.file, s.run, s.key) for f in preset.loss_figures for s in (*f.losses, *f.secondary)}
    assert drawn == {(c.figure, c.series.run, c.series.key) for r in roles for c in r.curves}
    assert {g.file for g in preset.grid_figures} == {g.file for r in roles for g in r.grids}

    name, spec = next((n, s) for n, s in MODELS.items() if s.reports)
    role = spec.reports[0]
    stray = dataclasses.replace(role, curves=(FigureSeries("nowhere.png", Series(role.run.key, "loss", "x")),))
    monkeypatch.setitem(MODELS, name, dataclasses.replace(spec, reports=(stray,)))
    with pytest.raises(ConfigError, match="nowhere.png"):
        gather(preset.name, preset.loss_figures)
