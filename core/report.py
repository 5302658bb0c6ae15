"""``python -m core.report``: train a seed report's models in one framework and write the report.

::

    python -m core.report --framework torch --out report/torch            # seed 004, seed preset
    python -m core.report --framework keras --out report/keras --steps 200
    python -m core.report --framework torch --out /tmp/r --preset tiny --steps 3

What a report holds - its models, step budgets, figure names and titles, the losses each figure
plots, the seed's prose - is one :class:`ReportPreset` declared in ``core/reports/<name>.py``
(``--report seed_004``, the default); this module knows no model by name. It launches the
framework's trainer in-process (``<framework>_impl.train.main(argv)``, the same CLI a user runs)
once per declared run, then renders ``REPORT/``::

    README.md             the report: architectures, loss figures, hyperparameters (read from each
                          run's hyperparameters.json), reconstruction / sample grids, results table,
                          sample-quality table (the preset's ``metrics``, e.g. FID/KID/precision/
                          recall in digits-network features, per run and for real vs real data)
    report.json           the same facts, machine-readable (steps, wall time, final losses and
                          sample-quality values per run; the real-vs-real floor)
    images/<figure>.png   the declared figures
    runs/<key>/           each run's directory (core.training's layout)
    logs/<key>/           a copy of each run's TensorBoard events: tensorboard --logdir REPORT/logs

Framework-neutral: imports neither torch nor TensorFlow (the framework's trainer is imported by
name when training starts).

Sample quality: a preset that declares ``metrics`` trains every run with ``--eval-every <its
steps> --eval-n <metrics_n> --eval-metrics <metrics>`` (:mod:`core.train_eval`: the metrics once,
at the last step, of fixed-noise samples, or of reconstructions for a model without a prior), and
the report computes the same metrics between two disjoint halves of the data, ``metrics_n``
pictures each, at the runs' image size: the floor a model matching the data would reach at that n.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import io
import json
import logging
import math
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import AgeError, ConfigError, OutputError
from .files import atomic_write_bytes, atomic_write_text
from .report_spec import FigureSeries, GridFigure, LossFigure, ReportRole, RunSpec, Series  # noqa: F401

log = logging.getLogger("age.report")

FRAMEWORKS = ("torch", "keras")
PRESETS = ("seed", "tiny")
DEFAULT_REPORT = "seed_004"
#: what a report's run directories, logs and figures are called inside ``REPORT/``
RUNS, LOGS, IMAGES, README, SUMMARY = "runs", "logs", "images", "README.md", "report.json"


# -- the declaration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportPreset:
    name: str
    title: str
    data: str
    runs: tuple[RunSpec, ...]
    loss_section: str
    loss_figures: tuple[LossFigure, ...]
    grid_figures: tuple[GridFigure, ...]
    kl_note: str = ""
    budget_note: str = ""
    #: sample-quality metrics (``core.metrics.suite`` names, e.g. "fid,kid,pr") every run logs once,
    #: at its last step, and the real-vs-real floor is computed with; "" measures nothing
    metrics: str = ""
    #: pictures per set: every run's ``--eval-n`` and each half of the floor (FID depends on n)
    metrics_n: int = 0

    def run(self, key: str) -> RunSpec:
        for spec in self.runs:
            if spec.key == key:
                return spec
        raise ConfigError(f"report {self.name}: no run {key!r} (runs: {', '.join(r.key for r in self.runs)})")

    @property
    def figures(self) -> tuple[str, ...]:
        return tuple(f.file for f in (*self.loss_figures, *self.grid_figures))

    def validate(self) -> None:
        """Every run's model is registered, and every figure names a declared run, a loss that
        run's objective logs, and a known grid."""
        from .registry import get_model_spec

        keys = [r.key for r in self.runs]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"report {self.name}: run keys repeat: {keys}")
        for spec in self.runs:
            get_model_spec(spec.model)
            for preset in PRESETS:
                if not isinstance(spec.steps.get(preset), int) or spec.steps[preset] <= 0:
                    raise ConfigError(f"report {self.name}: run {spec.key} needs positive steps for preset {preset!r}")
        for figure in self.loss_figures:
            for series in figure.losses:
                logs = {k for u in get_model_spec(self.run(series.run).model).objective.updates for k in u.logs}
                if series.key not in logs:
                    raise ConfigError(f"report {self.name}: {figure.file} plots {series.key!r} of {series.run}, "
                                      f"which its objective does not log ({sorted(logs)})")
            for series in figure.secondary:
                self.run(series.run)
        for grid in self.grid_figures:
            self.run(grid.run)
            if grid.source not in ("reconstructions", "samples"):
                raise ConfigError(f"report {self.name}: {grid.file}: source must be reconstructions or samples")
        if len(set(self.figures)) != len(self.figures):
            raise ConfigError(f"report {self.name}: figure files repeat: {self.figures}")
        if self.metrics:
            from .metrics.suite import parse_metrics

            parse_metrics(self.metrics, f"report {self.name}: metrics")
            if not isinstance(self.metrics_n, int) or self.metrics_n < 2:
                raise ConfigError(f"report {self.name}: metrics_n must be an integer >= 2, got {self.metrics_n!r}")


def gather(report: str, loss_figures: tuple[LossFigure, ...]
           ) -> tuple[tuple[RunSpec, ...], tuple[LossFigure, ...], tuple[GridFigure, ...]]:
    """(runs, loss figures with their curves, grid figures) of report ``report`` from the registered
    models' :class:`ReportRole` s (``ModelSpec.reports``), in their ``order``: the report module
    declares the figures' titles and axes, each model the run, curves and grids it adds."""
    from .registry import MODELS

    found = sorted((r for spec in MODELS.values() for r in spec.reports if r.report == report), key=lambda r: r.order)
    files = {f.file for f in loss_figures}
    for role in found:
        for curve in role.curves:
            if curve.figure not in files:
                raise ConfigError(f"report {report}: run {role.run.key} adds a curve to {curve.figure}, which the "
                                  f"report does not draw ({', '.join(sorted(files))})")

    def curves(figure: LossFigure, secondary: bool) -> tuple[Series, ...]:
        return tuple(c.series for r in found for c in r.curves if c.figure == figure.file and c.secondary == secondary)

    figures = tuple(dataclasses.replace(f, losses=curves(f, False), secondary=curves(f, True)) for f in loss_figures)
    return tuple(r.run for r in found), figures, tuple(g for r in found for g in r.grids)


def load_preset(name: str = DEFAULT_REPORT) -> ReportPreset:
    """The ``REPORT`` of ``core/reports/<name>.py``, validated."""
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ConfigError(f"--report must be a module name in core/reports, got {name!r}")
    try:
        module = importlib.import_module(f"{__package__}.reports.{name}")
    except ModuleNotFoundError:
        raise ConfigError(f"--report {name!r}: no core/reports/{name}.py") from None
    preset = getattr(module, "REPORT", None)
    if not isinstance(preset, ReportPreset):
        raise ConfigError(f"core/reports/{name}.py defines no REPORT (a ReportPreset)")
    preset.validate()
    return preset


# -- training -------------------------------------------------------------------------------------


def run_steps(spec: RunSpec, preset: str, steps: int | None) -> int:
    return steps if steps is not None else spec.steps[preset]


def train_argv(report: ReportPreset, spec: RunSpec, preset: str, steps: int, out: Path, seed: int) -> list[str]:
    """The trainer command line of one run (what the README shows, too)."""
    flags: dict[str, Any] = {"model": spec.model, "data": report.data, "preset": preset, "steps": steps,
                             "seed": seed}
    if report.metrics:  # evaluated once, at the last step
        flags.update(eval_every=steps, eval_n=report.metrics_n, eval_metrics=report.metrics)
    flags.update(spec.flags)
    flags.update({name: max(1, round(fraction * steps)) for name, fraction in spec.step_flags.items()})
    argv = []
    for name, value in flags.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    return [*argv, "--out", str(out)]


def train(report: ReportPreset, framework: str, out: Path, preset: str, steps: int | None, seed: int,
          progress: bool, threads: int | None = None) -> dict[str, dict[str, Any]]:
    """Train every run of ``report`` in ``framework`` (in this process); returns per run the
    argv and wall time."""
    trainer = importlib.import_module(f"{framework}_impl.train")
    if threads and framework == "torch" and "torch" in sys.modules:
        # imported before limit_threads (e.g. by a test): OMP_NUM_THREADS is not read again
        sys.modules["torch"].set_num_threads(threads)
    done: dict[str, dict[str, Any]] = {}
    for spec in report.runs:
        n = run_steps(spec, preset, steps)
        argv = train_argv(report, spec, preset, n, out / RUNS / spec.key, seed)
        log.info("%s: %s %s", spec.key, f"python -m {framework}_impl.train", " ".join(argv))
        started = time.perf_counter()
        code = trainer.main([*argv, *([] if progress else ["--no-progress"])])
        wall = time.perf_counter() - started
        if code != 0:
            raise AgeError(f"training {spec.key} ({spec.model}) failed with exit code {code}; see the log above")
        done[spec.key] = {"argv": argv, "wall_time_s": wall}
        log.info("%s: %d steps in %.1fs", spec.key, n, wall)
    return done


#: the environment variables that size a framework's CPU thread pools, read when it is imported
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def limit_threads(threads: int | None) -> None:
    """Size the frameworks' CPU thread pools (before they are imported). On a small shared machine
    one thread per trainer is often faster than oversubscribed cores (and lets ``make report`` run
    both frameworks side by side on two cores)."""
    if threads is None:
        return
    if threads <= 0:
        raise ConfigError(f"--threads must be positive, got {threads}")
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)


# -- reading runs ---------------------------------------------------------------------------------


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot read {path}: {exc}") from None


def history(run_root: Path) -> list[dict[str, float]]:
    from .training import read_state

    return read_state(run_root / "train_state.json")["history"]


def final_losses(hist: list[dict[str, float]], keys: list[str]) -> dict[str, dict[str, float]]:
    """Per key: the last step's value and the mean over the last tenth of the run (>= 1 step)."""
    tail = hist[-max(1, len(hist) // 10):]
    return {k: {"final": float(hist[-1][k]), "tail_mean": float(np.mean([h[k] for h in tail])),
                "tail_steps": len(tail)} for k in keys if hist and k in hist[-1]}


#: how the sample-quality table names a value
VALUE_LABELS = {"fid": "FID", "kid": "KID", "is": "IS"}


def value_names(report: ReportPreset) -> list[str]:
    from .metrics.suite import VALUES, parse_metrics

    return [v for m in parse_metrics(report.metrics, f"report {report.name}: metrics") for v in VALUES[m]]


def run_quality(report: ReportPreset, spec: RunSpec, run_root: Path, hist: list[dict[str, float]],
                config: Any) -> dict[str, Any]:
    """What the run's ``--eval-every`` logged last: {source, step, values}."""
    from .train_eval import PREFIX, source_of

    names = value_names(report)
    logged = [h for h in hist if all(PREFIX + v in h for v in names)]
    if not logged:
        raise OutputError(f"{run_root}: the run logged no {', '.join(PREFIX + v for v in names)} (trained before "
                          f"the report measured sample quality? train it again)")
    return {"source": source_of(config), "step": int(logged[-1]["step"]),
            "values": {v: float(logged[-1][PREFIX + v]) for v in names}}


#: other random splits of the data into two halves, whose floor values give the floor's spread
FLOOR_SPLITS = 8


def quality_floor(report: ReportPreset, image_size: int, channels: int, seed: int) -> dict[str, Any]:
    """The preset's metrics between two disjoint halves of the data (``metrics_n`` pictures each),
    at one image size: what a model matching the data gets. The halves are the runs' own
    evaluation draw (:data:`core.train_eval.REAL_KEY`): the first is every run's reference set, the
    second what an autoencoder reconstructs, so a perfect reconstruction scores exactly the floor.
    ``spread`` holds each value's [min, max] over :data:`FLOOR_SPLITS` other random splits: how much
    the floor itself moves with the draw (differences between models below that are noise)."""
    from .data import open_dataset
    from .metrics import features
    from .metrics.suite import compute, parse_metrics
    from .train_eval import REAL_KEY

    n = report.metrics_n
    data = open_dataset(report.data, image_size, channels)
    if 2 * n > len(data):
        raise ConfigError(f"report {report.name}: metrics_n {n} needs 2 x {n} pictures for the real-vs-real floor; "
                          f"--data {report.data} holds {len(data)}")
    network = features.digits()
    session = network.session()

    def halves(key: list[int]) -> tuple[dict[str, float], int]:
        """The metrics between the two halves of one draw, and the feature dimension."""
        pictures = features.draw_pictures(data, 2 * n, key)
        a, b = (features.extract(p, network, session=session) for p in (pictures[:n], pictures[n:]))
        results = compute(parse_metrics(report.metrics), a, b, seed)
        return {k: float(r["value"]) for k, r in results.items()}, int(a[0].shape[1])

    values, dim = halves([seed, REAL_KEY])
    others = [halves([seed, REAL_KEY, i])[0] for i in range(FLOOR_SPLITS)]
    spread = {k: [min(o[k] for o in others), max(o[k] for o in others)] for k in values}
    log.info("real-vs-real floor (%dx%dx%d, n %d): %s; over %d other splits: %s", image_size, image_size, channels,
             n, ", ".join(f"{k} {v:.5g}" for k, v in values.items()), FLOOR_SPLITS,
             ", ".join(f"{k} {lo:.4g}..{hi:.4g}" for k, (lo, hi) in spread.items()))
    return {"image_size": image_size, "channels": channels, "seed": seed, "network": network.name,
            "feature_dim": dim,
            "values": values, "spread": spread, "spread_splits": FLOOR_SPLITS}


def last_grid(run_root: Path, source: str) -> Path:
    grids = sorted((run_root / source).glob("epoch_*.png"))
    if not grids:
        raise OutputError(f"{run_root}: no {source}/epoch_NNN.png grid (did the run finish?)")
    return grids[-1]


# -- figures --------------------------------------------------------------------------------------


def smooth(values: np.ndarray) -> tuple[np.ndarray, int]:
    k = max(1, len(values) // 40)
    if k < 3:
        return values, 1
    return np.convolve(values, np.ones(k) / k, mode="valid"), k


def plot_loss_figure(figure: LossFigure, histories: dict[str, list[dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    def series_values(series: Series) -> tuple[np.ndarray, np.ndarray]:
        hist = histories[series.run]
        if not hist or series.key not in hist[-1]:
            raise OutputError(f"{figure.file}: run {series.run} logged no {series.key!r}")
        return (np.array([h["step"] for h in hist]), np.array([h[series.key] for h in hist], dtype=np.float64))

    for i, series in enumerate(figure.losses):
        steps, values = series_values(series)
        color = colors[i % len(colors)]
        avg, k = smooth(values)
        if k > 1:
            ax.plot(steps, values, lw=0.6, alpha=0.3, color=color)
            ax.plot(steps[k - 1:], avg, lw=1.6, color=color, label=f"{series.label} (avg {k})")
        else:
            ax.plot(steps, values, lw=1.4, color=color, label=series.label, marker="." if len(steps) < 20 else None)
    if figure.logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(figure.ylabel)
    ax.set_title(figure.title)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if figure.secondary:
        ax2 = ax.twinx()
        for j, series in enumerate(figure.secondary):
            steps, values = series_values(series)
            (line,) = ax2.plot(steps, values, lw=1.2, ls="--", color="0.35" if j == 0 else colors[-1 - j],
                               label=series.label)
        ax2.set_ylabel(figure.secondary_ylabel)
        ax2.set_ylim(bottom=0)
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="center right", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


# -- the README -----------------------------------------------------------------------------------


def docstring_markdown(obj: object) -> str:
    """A config docstring as Markdown: RST roles and double backticks become code spans."""
    text = inspect.getdoc(obj) or ""
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def fmt(value: float) -> str:
    return f"{value:.4g}"


def render_readme(report: ReportPreset, out: Path, summary: dict[str, Any]) -> str:
    from .configs import config_from_json
    from .registry import get_model_spec

    framework, preset = summary["framework"], summary["preset"]
    runs = summary["runs"]
    lines: list[str] = []
    add = lines.append
    add(f"# {report.title}")
    add("")
    add(f"Seed {report.name.removeprefix('seed_')}'s report, reproduced with the A.G.E. toolkit: "
        f"{len(report.runs)} models trained in **{framework}** on the embedded digits (`--data {report.data}`, "
        f"1,797 real 8x8 scans upscaled), `{preset}` preset. Produced by")
    add("")
    add("```")
    add(summary["command"])
    add("```")
    add("")
    add("Run TensorBoard to view the logs (losses, sample and reconstruction grids per epoch) in this "
        "report's `logs/` directory:")
    add("")
    add("```")
    add(f"tensorboard --logdir {out.as_posix()}/{LOGS}")
    add("```")
    add("")
    add(f"Each run's own directory (checkpoint, config, hyperparameters, every epoch's grids) is "
        f"`{RUNS}/<model>/`.")
    add("")
    add("## Model Architectures")
    add("")
    for spec in report.runs:
        model = get_model_spec(spec.model)
        config = read_json(out / RUNS / spec.key / "config.json")
        add(f"### {spec.heading}")
        add("")
        if spec.summary:
            add(spec.summary)
            add("")
        params = config_from_json(json.dumps(config), f"{spec.key} config.json").parameter_count()
        add(f"Registry model `{spec.model}`: {model.description}." +
            (f" {params:,} parameters at this preset." if params else ""))
        add("")
        add(docstring_markdown(model.config_cls))
        add("")
        if spec.diagram:
            add("```")
            add(spec.diagram)
            add("```")
            add("")
        add("<details><summary>config.json</summary>")
        add("")
        add("```json")
        add(json.dumps(config, sort_keys=True))
        add("```")
        add("")
        add("</details>")
        add("")
    add(f"## {report.loss_section}")
    add("")
    for figure in report.loss_figures:
        add(f"### {figure.heading}")
        add("")
        add(f"![{figure.alt}](./{IMAGES}/{figure.file})")
        add("")
    add("### Hyperparameters")
    add("")
    add("Read from each run's `hyperparameters.json` (the objective's defaults, then the model's, "
        "then the flags the report passed). Every optimizer is Adam.")
    add("")
    add("| model | steps | batch size | seed | hyperparameters |")
    add("|---|---:|---:|---:|---|")
    for spec in report.runs:
        hp = read_json(out / RUNS / spec.key / "hyperparameters.json")
        values = ", ".join(f"`{k}`={v}" for k, v in sorted(hp["hyperparameters"].items()))
        add(f"| `{spec.key}` | {runs[spec.key]['steps']} | {hp['batch_size']} | {hp['seed']} | {values} |")
    add("")
    sized = [s for s in report.runs if s.step_flags]
    if sized:
        add("### Adaptive KL Loss Strategies")
        add("")
        add(report.kl_note)
        add("")
        for spec in sized:
            flags = ", ".join(f"`--{k.replace('_', '-')} {max(1, round(f * runs[spec.key]['steps']))}` "
                              f"({f:g} × {runs[spec.key]['steps']} steps)" for k, f in spec.step_flags.items())
            add(f"- `{spec.key}`: {flags}")
        add("")
    sections = list(dict.fromkeys(g.section for g in report.grid_figures))
    for section in sections:
        add(f"## {section}")
        add("")
        for grid in (g for g in report.grid_figures if g.section == section):
            if grid.heading:
                add(f"### {grid.heading}")
                add("")
            what = ("top row: data, bottom row: reconstruction" if grid.source == "reconstructions"
                    else "fixed-noise samples")
            add(f"![{grid.alt}](./{IMAGES}/{grid.file})")
            add("")
            add(f"*`{grid.run}` after {runs[grid.run]['steps']} steps; {what}.*")
            add("")
    add("## Results")
    add("")
    add(f"Final losses ({framework}, {summary['machine']}): the last step's value, and in brackets "
        "the mean over the last tenth of the run. Wall time is the whole trainer call (start-up, "
        "training, per-epoch grids and snapshots).")
    add("")
    add("| model | steps | wall time (s) | ms/step | final losses (last step [mean of last 10%]) |")
    add("|---|---:|---:|---:|---|")
    for spec in report.runs:
        r = runs[spec.key]
        losses = ", ".join(f"{k} {fmt(v['final'])} [{fmt(v['tail_mean'])}]" for k, v in r["losses"].items())
        add(f"| `{spec.key}` | {r['steps']} | {r['wall_time_s']:.1f} | {1000 * r['wall_time_s'] / r['steps']:.0f} "
            f"| {losses} |")
    add("")
    add(f"Total training wall time: {summary['total_wall_time_s']:.1f} s.")
    add("")
    if report.metrics:
        render_quality(report, summary, add)
    add("## Budget and conclusions")
    add("")
    if report.budget_note:
        add(report.budget_note.format(steps=", ".join(f"{s.key} {runs[s.key]['steps']}" for s in report.runs)))
        add("")
    return "\n".join(lines)


def render_quality(report: ReportPreset, summary: dict[str, Any], add) -> None:
    """The "Sample quality" section: one row per run, after the real-vs-real floor of its shape."""
    from .metrics.suite import KID_SUBSET_SIZE, PR_K

    quality, runs = summary["sample_quality"], summary["runs"]
    n, names, floors = quality["n"], quality["values"], quality["floors"]
    add("## Sample quality")
    add("")
    add(f"{', '.join(VALUE_LABELS.get(v, v) for v in names)} of each model against {n} training images, "
        f"computed once at its last step by the trainer itself (`--eval-every <steps> --eval-n {n} "
        f"--eval-metrics {report.metrics}`), in the features of the toolkit's built-in **digits network** "
        f"({floors[0]['feature_dim']}-d penultimate activations of a small CNN classifier of these digit scans; "
        f"`python -m runtime.evaluate --features digits`, its default). They compare with each other, not with "
        f"FID/KID numbers computed with Inception-v3 features. Models with a prior are measured on fixed-noise "
        f"samples; a model without one (an autoencoder) on its reconstructions of the other half of the "
        f"data, which says how faithfully it reconstructs, not how well it generates. Lower FID and KID are better; "
        f"precision (k = {PR_K}) is the fraction of generated pictures that look like real data (fall inside "
        f"the real pictures' feature manifold), recall the fraction of the real data's variety the generated "
        f"pictures cover. The first row compares two disjoint halves of the data, {n} pictures each (the first "
        f"is every model's reference set): the value a model that matched the data would get at this n "
        f"(FID depends on n), and exactly what a perfect reconstruction gets: the floor.")
    if n <= KID_SUBSET_SIZE:
        add(f"KID's spread over subsets is not shown: with n = {n} every subset (size min({KID_SUBSET_SIZE}, n)) "
            f"is the whole set.")
    add("")
    add(f"| model | measured on | {' | '.join(VALUE_LABELS.get(v, v) for v in names)} |")
    add(f"|---|---|{'---:|' * len(names)}")
    shaped = len(floors) > 1
    for floor in floors:
        shape = f"{floor['image_size']}x{floor['image_size']}x{floor['channels']}"
        label = f"real vs real (floor{', ' + shape if shaped else ''})"
        add(f"| {label} | two disjoint halves of the data | "
            f"{' | '.join(fmt(floor['values'][v]) for v in names)} |")
        for spec in report.runs:
            q = runs[spec.key]["sample_quality"]
            if (q["image_size"], q["channels"]) != (floor["image_size"], floor["channels"]):
                continue
            add(f"| `{spec.key}` | {q['source']} (step {q['step']}) | "
                f"{' | '.join(fmt(q['values'][v]) for v in names)} |")
    add("")
    for floor in floors:
        if "spread" in floor:
            add(f"The floor moves with the draw: over {floor['spread_splits']} other random splits into two halves "
                f"it ranges " + ", ".join(f"{VALUE_LABELS.get(v, v)} {fmt(lo)} to {fmt(hi)}"
                                          for v, (lo, hi) in floor["spread"].items())
                + ". Differences between models smaller than that are noise of the draw, not quality.")
            add("")


# -- the report -----------------------------------------------------------------------------------


def render(report: ReportPreset, out: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """Figures, logs, report.json and README.md from the trained runs in ``out/runs``."""
    images, logs = out / IMAGES, out / LOGS
    images.mkdir(parents=True, exist_ok=True)
    histories = {}
    shapes: dict[tuple[int, int], int] = {}  # (image size, channels) -> the seed of the first run of that shape
    for spec in report.runs:
        root = out / RUNS / spec.key
        hist = history(root)
        histories[spec.key] = hist
        logged = list(dict.fromkeys(k for u in _objective(spec).updates for k in u.logs))
        entry = summary["runs"].setdefault(spec.key, {})
        entry.update(model=spec.model, steps=hist[-1]["step"] if hist else 0, losses=final_losses(hist, logged))
        if report.metrics:
            config = _config(root)
            shape = (int(config.image_size), int(config.in_channels))
            seed = int(read_json(root / "hyperparameters.json")["seed"])
            entry["sample_quality"] = {**run_quality(report, spec, root, hist, config),
                                       "image_size": shape[0], "channels": shape[1]}
            shapes.setdefault(shape, seed)
        target = logs / spec.key
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(root / "tb", target)
    if report.metrics:
        summary["sample_quality"] = {"metrics": report.metrics, "n": report.metrics_n, "values": value_names(report),
                                     "floors": [quality_floor(report, size, channels, seed)
                                                for (size, channels), seed in shapes.items()]}
    for figure in report.loss_figures:
        plot_loss_figure(figure, histories, images / figure.file)
    for grid in report.grid_figures:
        shutil.copyfile(last_grid(out / RUNS / grid.run, grid.source), images / grid.file)
    summary["figures"] = list(report.figures)
    atomic_write_text(out / SUMMARY, json.dumps(summary, indent=2, sort_keys=True))
    atomic_write_text(out / README, render_readme(report, out, summary))
    return summary


def _config(run_root: Path) -> Any:
    from .configs import config_from_json

    path = run_root / "config.json"
    return config_from_json(json.dumps(read_json(path)), str(path))


def _objective(spec: RunSpec) -> type:
    from .registry import get_model_spec

    return get_model_spec(spec.model).objective


def machine() -> str:
    import platform

    return f"{platform.machine()}, {os.cpu_count()} CPU cores"


def build_report(framework: str, out: str | os.PathLike, preset: str = "seed", steps: int | None = None,
                 report_name: str = DEFAULT_REPORT, seed: int = 0, overwrite: bool = False,
                 render_only: bool = False, progress: bool = False, threads: int | None = None) -> dict[str, Any]:
    """Train (unless ``render_only``) and render one report; returns the summary (report.json)."""
    if framework not in FRAMEWORKS:
        raise ConfigError(f"--framework must be one of {', '.join(FRAMEWORKS)}, got {framework!r}")
    if preset not in PRESETS:
        raise ConfigError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    if steps is not None and steps <= 0:
        raise ConfigError("--steps must be positive")
    report = load_preset(report_name)
    out = Path(out)
    command = " ".join(["python -m core.report", f"--framework {framework}", f"--out {out.as_posix()}",
                        f"--preset {preset}", *([f"--steps {steps}"] if steps is not None else []),
                        *([f"--report {report_name}"] if report_name != DEFAULT_REPORT else []),
                        *([f"--seed {seed}"] if seed else []), *([f"--threads {threads}"] if threads else [])])
    if render_only:
        summary = read_json(out / SUMMARY)
        return render(report, out, summary)
    if (out / RUNS).exists():
        if not overwrite:
            raise OutputError(f"{out} already holds a report's runs; pass --overwrite to replace them "
                              f"(or --render-only to redraw it)")
        for name in (RUNS, LOGS, IMAGES):
            shutil.rmtree(out / name, ignore_errors=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot create it ({exc.strerror or exc})") from None
    limit_threads(threads)
    started = time.perf_counter()
    trained = train(report, framework, out, preset, steps, seed, progress, threads)
    summary = {"report": report.name, "framework": framework, "preset": preset, "command": command,
               "machine": machine(), "threads": threads, "total_wall_time_s": time.perf_counter() - started,
               "runs": {key: dict(value) for key, value in trained.items()}}
    return render(report, out, summary)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core.report", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--framework", required=True, choices=FRAMEWORKS, help="which trainer runs the models")
    p.add_argument("--out", required=True, help="report directory")
    p.add_argument("--preset", default="seed", choices=PRESETS,
                   help="'seed': the seed's models at the report's step budget; 'tiny': tiny configs (tests)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per model (default: the preset's)")
    p.add_argument("--report", default=DEFAULT_REPORT, help=f"core/reports/<name>.py (default {DEFAULT_REPORT})")
    p.add_argument("--seed", type=int, default=0, help="training seed of every run (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace the runs, logs and images of an earlier report")
    p.add_argument("--render-only", action="store_true", help="redraw figures and README from the existing runs")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads per framework (sets OMP_NUM_THREADS, TF_NUM_INTRAOP/INTEROP_THREADS; "
                        "default: the framework's own choice)")
    p.add_argument("--progress", action="store_true", help="show the trainers' progress bars")
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        summary = build_report(args.framework, args.out, args.preset, args.steps, args.report, args.seed,
                               args.overwrite, args.render_only, args.progress, args.threads)
    except AgeError as exc:
        log.error("%s", exc)
        return 2
    except OSError as exc:
        log.error("%s", exc)
        return 2
    log.info("report written: %s (%.1fs of training)", Path(args.out) / README, summary["total_wall_time_s"])
    return 0


if __name__ == "__main__":
    # run as ``core.report``, the module the presets import, not as a second copy named __main__
    from core.report import main as report_main

    sys.exit(report_main())
