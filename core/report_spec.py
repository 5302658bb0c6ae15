"""What a report declares, as plain data (no registry, no rendering): its runs, the curves and
grids its figures show, and each model's role in it.

A model takes part in a report through its own registration: ``ModelSpec.reports`` holds a
:class:`ReportRole` per report (its run, the curves it adds to the report's loss figures, its image
grids). The report's module (``core/reports/<name>.py``) declares what is the report's own - title,
figure titles and axes, prose - and :func:`core.report.roles` gathers the models' roles in order,
so no report module names a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunSpec:
    """One training run of a report: registry ``model`` trained into ``runs/<key>``."""

    key: str
    model: str
    heading: str  #: the report's section title for this model ("1. Autoencoder")
    steps: dict[str, int]  #: optimizer steps per report preset ("seed", "tiny")
    summary: str = ""  #: one line of the seed's prose
    diagram: str = ""  #: the seed's data-flow sketch, shown as a code block
    flags: dict[str, Any] = field(default_factory=dict)  #: trainer flags, e.g. {"samples": 64}
    #: trainer flags sized to the run: value = round(fraction * steps), e.g. {"kl_warmup": 0.5}
    step_flags: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Series:
    """One curve: value ``key`` of run ``run``'s per-step history (train_state.json)."""

    run: str
    key: str
    label: str


@dataclass(frozen=True)
class LossFigure:
    file: str
    heading: str
    alt: str
    title: str
    ylabel: str
    #: curves on the left axis: losses the run's objective logs (``Update.logs``)
    losses: tuple[Series, ...]
    #: curves on a second axis (schedules such as the KL weight: values the objective logs beside them)
    secondary: tuple[Series, ...] = ()
    secondary_ylabel: str = ""
    logy: bool = False


@dataclass(frozen=True)
class GridFigure:
    """A run's last image grid: ``reconstructions`` (data row over reconstruction row) or
    ``samples`` (the fixed-noise grid)."""

    file: str
    run: str
    source: str
    heading: str
    alt: str
    section: str


@dataclass(frozen=True)
class FigureSeries:
    """A curve a run adds to a report's loss figure ``figure`` (its file name); ``secondary``: on
    the figure's second axis."""

    figure: str
    series: Series
    secondary: bool = False


@dataclass(frozen=True)
class ReportRole:
    """One model's part in report ``report``: its run (``order`` sorts the runs), the curves it
    adds to the report's loss figures and its image grids."""

    report: str
    order: int
    run: RunSpec
    curves: tuple[FigureSeries, ...] = ()
    grids: tuple[GridFigure, ...] = ()
