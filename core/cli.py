"""The one argument parser both trainers use (``python -m torch_impl.train`` / ``keras_impl.train``)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable

from .registry import MODELS, get_model_spec
from .trainer_base import MEMORY_FORMATS, SpeedOptions


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _number(value: float | None, unbounded: str) -> str:
    if value is None:
        return unbounded
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def _describe(f: dataclasses.Field, default: Any) -> str:
    """A generated flag's help: the field's help, the model's default, the range or choices."""
    text = f.metadata.get("help", "")
    low, high, low_open = f.metadata.get("range", (None, None, False))
    if f.metadata.get("choices"):
        bounds = ""
    elif low is not None or high is not None:
        bounds = f", {'(' if low_open else '['}{_number(low, '-inf')}, {_number(high, 'inf')}]"
    else:
        bounds = ""
    return f"{text} (default {default}{bounds})".replace("%", "%%")


def _add_field_flags(group: argparse._ArgumentGroup, fields: list[dataclasses.Field], defaults: dict[str, Any]) -> None:
    """One flag per dataclass field, typed by its default; every default is None so that what the
    user typed can be told from what the model defaults to (:func:`given`)."""
    for f in fields:
        default = defaults[f.name]
        kind = type(f.default)  # the field's declared type: a model default of 1 for a float stays a float
        choices = f.metadata.get("choices")
        group.add_argument(_flag(f.name), dest=f.name, type=kind if kind in (int, float, str) else str,
                           default=None, choices=choices, metavar=None if choices else f.name.upper(),
                           help=_describe(f, default))


def hyperparameter_fields(model: str, objective: str | None = None) -> list[dataclasses.Field]:
    """The fields of the hyperparameters of ``model``'s objective ``objective`` (None: its default)."""
    return list(dataclasses.fields(get_model_spec(model).objective_choice(objective).objective.hyperparameters))


def hyperparameter_defaults(model: str, objective: str | None = None) -> dict[str, Any]:
    """The objective's defaults with the model's own for it (:class:`core.modelspec.ObjectiveChoice`) over them."""
    choice = get_model_spec(model).objective_choice(objective)
    base = {f.name: f.default for f in dataclasses.fields(choice.objective.hyperparameters)}
    return {**base, **choice.hyperparameters}


def speed_options(args: argparse.Namespace) -> SpeedOptions:
    """The trainers' ``--memory-format`` and ``--compile``."""
    return SpeedOptions(memory_format=args.memory_format, compile=args.compile)


def given(args: argparse.Namespace, fields: list[dataclasses.Field]) -> dict[str, Any]:
    """The generated flags the user actually passed."""
    return {f.name: getattr(args, f.name) for f in fields if getattr(args, f.name, None) is not None}


def train_parser(prog: str, model: str | None = None, objective: str | None = None) -> argparse.ArgumentParser:
    """The trainers' flags: the common ones, then ``model``'s objective hyperparameters (of
    ``objective``, its default when None) and config flags, generated from their typed
    declarations (``--model X [--objective Y] --help`` lists X's)."""
    models = "\n".join(f"  {name:<10} {spec.description}" for name, spec in sorted(MODELS.items()))
    p = argparse.ArgumentParser(prog=prog, description="Train an A.G.E. model; the run directory is resumable.",
                                epilog=f"models:\n{models}\n\n`--model NAME --help` lists NAME's objective flags.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, choices=sorted(MODELS), metavar="NAME",
                   help="registry key (required for a new run; on --resume, the run's)")
    p.add_argument("--objective", default=None, metavar="NAME",
                   help="objective, for a model that trains with several (default: the model's first; "
                        "on --resume, the run's)")
    p.add_argument("--data", default="digits",
                   help="ImageFolder directory (a folder of clips for video models), or 'digits' for the "
                        "embedded default: the digits, moving digits for video models (default)")
    p.add_argument("--preset", default="seed", help="config preset: 'seed' (the seed's numbers) or 'tiny'")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, default=None, help="passes over the data (default 10)")
    length.add_argument("--steps", type=int, default=None, help="optimizer steps (instead of --epochs)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="batch size, 1..4096 (default: the model's" + (f", {get_model_spec(model).batch_size})"
                                                                         if model else ")"))
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last snapshot, with its saved hyperparameters")
    p.add_argument("--seed", type=int, default=None, help="seed for initial weights, data order and noise (default 0)")
    p.add_argument("--checkpoint-every", type=int, default=0,
                   help="also write RUN/checkpoints/step_N.safetensors every N steps (0: once per epoch)")
    p.add_argument("--keep-checkpoints", type=int, default=5, help="periodic checkpoints to keep (default 5)")
    p.add_argument("--samples", type=int, default=16, help="images in the fixed-noise grid, 1..1024 (default 16)")
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    p.add_argument("--no-progress", action="store_true", help="disable the progress bar")
    p.add_argument("--memory-format", default="channels_last", choices=MEMORY_FORMATS,
                   help="torch: weights and images channels_last while training (default; 5-D convolutions "
                        "channels_last_3d) or contiguous (NCHW); checkpoints are canonical either way. Keras "
                        "always computes channels-last and ignores it")
    p.add_argument("--compile", action="store_true",
                   help="compile each update: torch.compile in torch, XLA (jit_compile) in Keras; slower to "
                        "start, and off by default (see the README's training section for what it buys)")
    p.add_argument("--eval-every", type=int, default=0,
                   help="every N steps, metrics of --eval-n fixed-noise samples (an autoencoder's reconstructions; "
                        "a video model's frames) against the data (digits feature network), logged and kept with "
                        "the best checkpoint (default 0: off)")
    p.add_argument("--eval-n", type=int, default=512, help="samples and data images per evaluation (default 512)")
    p.add_argument("--eval-metrics", default="fid,kid",
                   help="comma-separated of is, fid, kid, pr, dc; the first decides the best checkpoint "
                        "(default fid,kid)")
    if model is None:
        return p
    spec = get_model_spec(model)
    choice = spec.objective_choice(objective)
    names = list(spec.objectives)
    others = f" (--objective {' | '.join(names)})" if len(names) > 1 else ""
    group = p.add_argument_group(f"{model}: {choice.objective.name} objective{others}")
    _add_field_flags(group, hyperparameter_fields(model, objective), hyperparameter_defaults(model, objective))
    if spec.config_flags:
        config = p.add_argument_group(f"{model}: model config")
        fields = [f for f in dataclasses.fields(spec.config_cls) if f.name in spec.config_flags]
        _add_field_flags(config, fields, {f.name: f.default for f in fields})
    return p


def _given_or_run(argv: list[str] | None, flag: str, choices: Any,
                  from_run: Callable[[str], str | None] | None) -> str | None:
    """``--<flag>`` when it is one of ``choices``, else (on ``--resume`` without it) what
    ``from_run(--out)`` says the run used, when that is one of ``choices``; else None."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument(f"--{flag}", default=None)
    pre.add_argument("--out", default=None)
    pre.add_argument("--resume", action="store_true")
    known, _ = pre.parse_known_args(argv)
    value = getattr(known, flag)
    if value in choices:
        return value
    if value is None and known.resume and known.out and from_run is not None:
        found = from_run(known.out)
        if found in choices:
            return found
    return None


def model_of(argv: list[str] | None, run_model: Callable[[str], str | None] | None = None) -> str | None:
    """The model whose flags to parse: ``--model``, else (on ``--resume``) the run's, else None."""
    return _given_or_run(argv, "model", MODELS, run_model)


def objective_of(argv: list[str] | None, model: str | None,
                 run_objective: Callable[[str], str | None] | None = None) -> str | None:
    """The objective whose flags to parse: ``--objective`` when ``model`` trains with it, else (on
    ``--resume``) the run's, else None (the model's default). An unknown name is left for
    :func:`core.runconfig.resolve` to refuse by name."""
    if model is None:
        return None
    return _given_or_run(argv, "objective", get_model_spec(model).objectives, run_objective)


def variations_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Encode an image, sample N latents around its mean (variance scaled by --scale), decode, save a grid.",
    )
    p.add_argument("checkpoint", help="canonical checkpoint (.safetensors) of any model with an encoder part")
    p.add_argument("image", help="input image (any Pillow-readable format)")
    p.add_argument("--n", type=int, default=10, help="number of variations, 1..4096 (default 10, seed 002)")
    p.add_argument("--scale", type=float, default=0.01, help="variance scale w (default 0.01, seed 002)")
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    p.add_argument("--out", default="variations.png",
                   help="output: .png grid (a video model's first frames), .gif/.mp4 grid animation, or .npy")
    p.add_argument("--nrow", type=int, default=None, help="images per grid row, 1..n (default: a square grid)")
    p.add_argument("--log-level", default="INFO")
    return p
