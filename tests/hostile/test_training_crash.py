"""Training under crashes and corrupt state: nothing lost, nothing replayed, nothing silently accepted.

* kill -9 between every pair of writes of a snapshot: ``--resume`` then ends bit-identical to an
  uninterrupted run (no replayed or skipped step), and the orphans of the killed write are swept;
* weights that stop being finite are never written over the last good snapshot;
* corrupt optimizer state / ``train_state.json`` / inconsistent snapshots are refused by name;
* BatchNorm with one value per channel is refused in both frameworks with one message;
* two identical runs write identical bytes.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.checkpoint import OPTIMIZER_DTYPES, encode_safetensors, load_checkpoint, read_safetensors
from core.snapshot import latest

ROOT = Path(__file__).resolve().parents[2]
STEPS, BATCH, EVERY = 6, 4, 2


def _train(framework: str, argv: list[str]) -> int:
    return importlib.import_module(f"{framework}_impl.train").main(argv)


def _argv(out: Path, data: Path, steps: int = STEPS, *extra: str) -> list[str]:
    return ["--model", "conv_vae", "--preset", "tiny", "--steps", str(steps), "--batch-size", str(BATCH),
            "--checkpoint-every", str(EVERY), "--out", str(out), "--data", str(data), "--no-progress",
            "--samples", "4", *extra]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """12 small pictures (3 batches of 4 per epoch: epoch ends and periodic snapshots interleave)."""
    root = tmp_path_factory.mktemp("crashdata") / "data"
    root.mkdir()
    rng = np.random.default_rng(5)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(root / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("reference") / "run"
    assert _train("torch", _argv(run, data)) == 0
    return run


def _tensors(run: Path) -> dict[str, np.ndarray]:
    return load_checkpoint(run / "checkpoint.safetensors").tensors


def _assert_same_run(a: Path, b: Path) -> None:
    ta, tb = _tensors(a), _tensors(b)
    assert set(ta) == set(tb)
    for name in ta:
        np.testing.assert_array_equal(ta[name], tb[name], err_msg=name)
    ha = json.loads((a / "train_state.json").read_text())["history"]
    hb = json.loads((b / "train_state.json").read_text())["history"]
    assert ha == hb and [h["step"] for h in hb] == list(range(1, STEPS + 1))


# --------------------------------------------------------------------------- kill -9 mid-snapshot

#: Runs the torch trainer with os.replace / os.rename / os.link counted (inside the run directory
#: only); at the AGE_KILL_AT-th one the process SIGKILLs itself before doing it.
_CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    run_dir, kill_at, log_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    count = 0
    def counted(name, real):
        def op(src, dst, *args, **kwargs):
            global count
            if str(dst).startswith(run_dir):
                count += 1
                with open(log_path, "a") as fh:
                    fh.write(f"{{count}} {{name}} {{os.path.relpath(str(dst), run_dir)}}\\n")
                if count == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst, *args, **kwargs)
        return op
    for name in ("replace", "rename", "link"):
        setattr(os, name, counted(name, getattr(os, name)))
    from torch_impl.train import main
    sys.exit(main(sys.argv[4:]))
""")


def _child(tmp_path: Path, run: Path, data: Path, kill_at: int) -> tuple[int, list[str]]:
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(root=str(ROOT)))
    log = tmp_path / f"ops-{kill_at}.log"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(script), str(run), str(kill_at), str(log), *_argv(run, data)],
                          env=env, capture_output=True, text=True, timeout=300)
    return proc.returncode, log.read_text().splitlines() if log.exists() else []


@pytest.fixture(scope="module")
def write_sequence(data, tmp_path_factory) -> list[str]:
    """Every rename/replace/link of a whole run, in order (a run that is never killed)."""
    tmp = tmp_path_factory.mktemp("sequence")
    rc, ops = _child(tmp, tmp / "run", data, kill_at=0)
    assert rc == 0
    return ops


def _snapshot_ops(ops: list[str], step: int) -> list[int]:
    """Numbers (1-based) of the operations that write and publish the snapshot of ``step`` and its
    periodic checkpoint, plus the first operation after them: killing before each covers every
    gap between two writes."""
    marker = f"step_{step:07d}"
    names = [op.split()[-1] for op in ops]
    first = next(i for i, name in enumerate(names) if marker in name and name.startswith("snapshots"))
    last = names.index(f"checkpoints/{marker}.safetensors")
    return list(range(first + 1, last + 3))


def test_the_sequence_is_what_the_kill_test_assumes(write_sequence):
    names = [op.split()[-1] for op in write_sequence]
    snapshot = [n for n in names if "step_0000004" in n and n.startswith("snapshots")]
    # three files into the temporary directory, then the one rename that commits them
    assert [Path(n).name for n in snapshot[:3]] == ["checkpoint.safetensors", "optimizer_torch.safetensors",
                                                    "train_state.json"]
    assert snapshot[-1] == "snapshots/step_0000004" and "rename" in write_sequence[names.index(snapshot[-1])]


def test_kill_between_every_pair_of_writes_never_loses_or_replays_a_step(write_sequence, reference, data,
                                                                           tmp_path):
    kill_points = _snapshot_ops(write_sequence, 4)
    assert len(kill_points) >= 8
    with ThreadPoolExecutor(max_workers=4) as pool:  # the children are import-bound: overlap them
        codes = list(pool.map(lambda k: _child(tmp_path, tmp_path / f"killed-{k}", data, k)[0], kill_points))
    for kill_at, rc in zip(kill_points, codes):
        run = tmp_path / f"killed-{kill_at}"
        assert rc == -signal.SIGKILL, f"kill point {kill_at} was not reached"
        before = latest(run)
        assert before is not None and before.step in (2, 3, 4), write_sequence[kill_at - 1]
        assert _train("torch", _argv(run, data, STEPS, "--resume")) == 0, write_sequence[kill_at - 1]
        _assert_same_run(reference, run)
        leftovers = [p for p in run.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".tmp-")]
        assert leftovers == [], (write_sequence[kill_at - 1], leftovers)


def test_orphans_of_a_killed_write_are_swept_on_the_next_start(write_sequence, data, tmp_path, caplog):
    names = [op.split()[-1] for op in write_sequence]
    # kill just before the commit rename of step 4: its temporary directory is left behind
    kill_at = names.index("snapshots/step_0000004") + 1
    run = tmp_path / "orphans"
    assert _child(tmp_path, run, data, kill_at)[0] == -signal.SIGKILL
    assert list((run / "snapshots").glob(".tmp-step_0000004-*"))
    (run / ".checkpoint.safetensors.abc.tmp").write_bytes(b"half a file")
    caplog.set_level(logging.WARNING, logger="age.train")
    assert _train("torch", _argv(run, data, STEPS, "--resume")) == 0
    assert "temporary file(s) left by an interrupted write" in caplog.text
    assert not list(run.rglob("*.tmp")) and not list((run / "snapshots").glob(".tmp-*"))


# --------------------------------------------------------------------------- non-finite state


def test_non_finite_weights_never_overwrite_the_last_good_snapshot(data, tmp_path, caplog, monkeypatch):
    import torch

    from torch_impl import train as torch_train

    run = tmp_path / "nan"
    assert _train("torch", _argv(run, data, 2)) == 0
    good = (run / "checkpoint.safetensors").read_bytes()
    good_snapshot = latest(run)

    real_step = torch_train.Trainer.train_step

    def poisoned(self, batch, step):
        losses = real_step(self, batch, step)  # finite losses: the update itself went wrong
        with torch.no_grad():  # the first element, whatever the weight's memory format
            weight = next(self.model.parameters())
            weight[(0,) * weight.dim()] = float("nan")
        return losses

    monkeypatch.setattr(torch_train.Trainer, "train_step", poisoned)
    caplog.set_level(logging.ERROR, logger="age.train")
    assert _train("torch", _argv(run, data, 4, "--resume")) == 2
    assert "cannot save the training state" in caplog.text and "NaN or infinite" in caplog.text
    assert "encoder.0.0.weight" in caplog.text
    assert "last good snapshot" in caplog.text and "step 2" in caplog.text
    assert (run / "checkpoint.safetensors").read_bytes() == good
    assert latest(run) == good_snapshot
    assert not list(run.rglob("*.tmp")) and not list((run / "snapshots").glob(".tmp-*"))


# --------------------------------------------------------------------------- Ctrl-C inside a step


def test_ctrl_c_inside_a_step_finishes_the_step_then_saves(data, tmp_path, caplog, monkeypatch):
    """vaegan trains its critic, then its generator, in one step: a SIGINT between the two must not
    save the half-done step (resuming would replay the critic update)."""
    from torch_impl import train as torch_train

    argv = ["--model", "vaegan", "--preset", "tiny", "--batch-size", "4", "--n-critic", "1", "--data", str(data),
            "--no-progress", "--samples", "4"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert _train("torch", [*argv, "--steps", "5", "--out", str(straight)]) == 0
    real_update = torch_train.Trainer.run_update
    calls = []

    def interrupted(self, update, batch, inputs):
        if update.name == "generator":
            calls.append(1)
            if len(calls) == 3:  # inside step 3, after its critic update
                os.kill(os.getpid(), signal.SIGINT)
        return real_update(self, update, batch, inputs)

    monkeypatch.setattr(torch_train.Trainer, "run_update", interrupted)
    caplog.set_level(logging.WARNING, logger="age.train")
    assert _train("torch", [*argv, "--steps", "5", "--out", str(split)]) == 130
    assert "interrupted after step 3" in caplog.text
    assert latest(split).step == 3
    monkeypatch.undo()
    assert _train("torch", [*argv, "--steps", "5", "--out", str(split), "--resume"]) == 0
    a, b = _tensors(straight), _tensors(split)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# --------------------------------------------------------------------------- corrupt state files


@pytest.fixture(scope="module")
def trained_pair(data, tmp_path_factory) -> dict[str, Path]:
    """A 2-step run of each framework, to corrupt copies of."""
    runs = {}
    for fw in ("torch", "keras"):
        run = tmp_path_factory.mktemp(f"pair-{fw}") / "run"
        assert _train(fw, _argv(run, data, 2)) == 0
        runs[fw] = run
    return runs


def _copy(run: Path, tmp_path: Path) -> Path:
    import shutil

    dest = tmp_path / "copy"
    shutil.copytree(run, dest)
    return dest


def _rewrite_safetensors(path: Path, change) -> None:
    meta, tensors = read_safetensors(path, "x", OPTIMIZER_DTYPES)
    meta, tensors = change(dict(meta), dict(tensors))
    data = encode_safetensors(tensors, meta) if meta is not None else tensors
    path.unlink()  # break the hard link to the run root's copy
    path.write_bytes(data)


def _nan_moment(meta, tensors):
    name = next(n for n in sorted(tensors) if tensors[n].ndim > 1)
    tensors[name] = tensors[name].copy()
    tensors[name].flat[0] = np.nan
    return meta, tensors


def _layout(value):
    def change(meta, tensors):
        meta["layout"] = value
        return meta, tensors
    return change


def _step(value):
    def change(meta, tensors):
        meta["step"] = value
        return meta, tensors
    return change


OPTIMIZER_CASES = {
    "nan_moment": (_nan_moment, "NaN"),
    "layout_list": (_layout("[1, 2]"), "holds optimizers"),
    "layout_not_json": (_layout("{oops"), "not valid JSON"),
    "layout_deep": (_layout("[" * 50000 + "]" * 50000), "nested"),
    "step_text": (_step("abc"), "step 'abc'"),
    "step_negative": (_step("-5"), "step '-5'"),
}


@pytest.mark.parametrize("framework", ["torch", "keras"])
@pytest.mark.parametrize("case", sorted(OPTIMIZER_CASES))
def test_corrupt_optimizer_state_is_refused_by_name(framework, case, trained_pair, data, tmp_path, caplog):
    run = _copy(trained_pair[framework], tmp_path)
    snap = latest(run)
    change, fragment = OPTIMIZER_CASES[case]
    _rewrite_safetensors(snap.optimizer(framework), change)
    before = snap.checkpoint.read_bytes()
    caplog.set_level(logging.ERROR, logger="age.train")
    assert _train(framework, _argv(run, data, 4, "--resume")) == 2
    assert fragment in caplog.text and f"optimizer_{framework}.safetensors" in caplog.text
    assert latest(run) == snap and snap.checkpoint.read_bytes() == before


def test_torch_param_groups_of_another_shape_are_refused(trained_pair, data, tmp_path, caplog):
    run = _copy(trained_pair["torch"], tmp_path)
    snap = latest(run)

    def change(meta, tensors):
        groups = json.loads(meta["layout"])
        groups["model"][0]["lr"] = "fast"
        meta["layout"] = json.dumps(groups)
        return meta, tensors

    _rewrite_safetensors(snap.optimizer("torch"), change)
    caplog.set_level(logging.ERROR, logger="age.train")
    assert _train("torch", _argv(run, data, 4, "--resume")) == 2
    assert "layout.model[0].lr must be a finite number" in caplog.text


def _torch_edit(edit):
    def change(meta, tensors):
        groups = json.loads(meta["layout"])
        edit(groups["model"][0], tensors)
        meta["layout"] = json.dumps(groups)
        return meta, tensors
    return change


def _drop(key):
    return lambda group, tensors: [tensors.pop(n) for n in list(tensors) if n.endswith(key)][:1]


def _scale(key, factor):
    def edit(group, tensors):
        name = next(n for n in sorted(tensors) if n.endswith(key))
        tensors[name] = tensors[name] * np.float32(factor)
    return edit


TORCH_CASES = {
    "missing_moment": (_drop(".exp_avg_sq"), "every parameter needs"),
    "params_permuted": (lambda g, t: g.__setitem__("params", g["params"][::-1]), "layout.model[0].params"),
    "amsgrad": (lambda g, t: g.__setitem__("amsgrad", True), "layout.model[0].amsgrad is True"),
    "maximize": (lambda g, t: g.__setitem__("maximize", True), "layout.model[0].maximize is True"),
    "negative_lr": (lambda g, t: g.__setitem__("lr", -5), "learning rate -5"),
    "bad_betas": (lambda g, t: g.__setitem__("betas", [7, -3]), "betas [7, -3]"),
    "negative_step": (_scale(".step", -1), "must hold a whole number >= 0"),
    "negative_second_moment": (_scale(".exp_avg_sq", -1), "must hold >= 0"),
    "unknown_key": (lambda g, t: t.__setitem__("model.state.0.bogus", np.zeros(1, np.float32)),
                    "'bogus' is not part of Adam's state"),
}


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_torch_adam_state_is_checked_against_the_live_optimizer(case, trained_pair, data, tmp_path, caplog):
    run = _copy(trained_pair["torch"], tmp_path)
    edit, fragment = TORCH_CASES[case]
    _rewrite_safetensors(latest(run).optimizer("torch"), _torch_edit(edit))
    caplog.set_level(logging.ERROR, logger="age.train")
    assert _train("torch", _argv(run, data, 4, "--resume")) == 2
    assert fragment in caplog.text and "optimizer_torch.safetensors" in caplog.text


@pytest.mark.parametrize("role, fragment", [(1, "learning rate"), (-1, "second moment")])
def test_keras_adam_values_are_checked(role, fragment, trained_pair, data, tmp_path, caplog):
    run = _copy(trained_pair["keras"], tmp_path)

    def change(meta, tensors):  # variables: iteration, learning_rate, then (momentum, velocity) pairs
        name = sorted(tensors)[role if role > 0 else -1]
        tensors[name] = -np.abs(tensors[name]) - 1
        return meta, tensors

    _rewrite_safetensors(latest(run).optimizer("keras"), change)
    caplog.set_level(logging.ERROR, logger="age.train")
    assert _train("keras", _argv(run, data, 4, "--resume")) == 2
    assert fragment in caplog.text and "optimizer_keras.safetensors" in caplog.text


STATE_CASES = {
    "step_text": ({"step": "abc"}, "'step' must be an integer >= 0"),
    "step_negative": ({"step": -5}, "'step' must be an integer >= 0"),
    "history_object": ({"history": {"a": 1}}, "'history' must be a list"),
    "history_nan": ({"history": [{"step": 1, "loss": "NaN"}]}, "not a finite number"),
    "history_future": ({"history": [{"step": 99, "loss": 1.0}]}, "history[0] has step 99"),
    "list_at_top": ([1, 2], "must be a JSON object"),
    "deep": ("[" * 100000 + "]" * 100000, "nested"),
}


@pytest.mark.parametrize("case", sorted(STATE_CASES))
def test_corrupt_train_state_is_refused_by_name(case, trained_pair, data, tmp_path, caplog):
    run = _copy(trained_pair["torch"], tmp_path)
    snap = latest(run)
    change, fragment = STATE_CASES[case]
    state = json.loads(snap.state.read_text())
    text = change if isinstance(change, str) else json.dumps({**state, **change} if isinstance(change, dict) else change)
    snap.state.unlink()
    snap.state.write_text(text)
    caplog.set_level(logging.ERROR, logger="age.train")
    assert _train("torch", _argv(run, data, 4, "--resume")) == 2
    assert fragment in caplog.text and "train_state.json" in caplog.text


def test_the_sweep_leaves_folders_that_are_not_runs_alone(data, tmp_path):
    project = tmp_path / "project"
    (project / "notes").mkdir(parents=True)
    foreign = [project / ".draft.tmp", project / "notes" / ".draft.tmp"]
    for path in foreign:
        path.write_text("someone else's")
    assert _train("torch", _argv(project, data, 1)) == 0
    assert all(p.exists() for p in foreign)


def test_root_copies_are_not_links_into_the_snapshot(data, tmp_path):
    run = tmp_path / "run"
    assert _train("torch", _argv(run, data, 1)) == 0  # (not a copytree: that would break links itself)
    snap = latest(run)
    before = snap.state.read_bytes()
    with open(run / "train_state.json", "w") as fh:  # an in-place edit of the published copy
        fh.write("{}")
    assert snap.state.read_bytes() == before


def test_a_history_with_uneven_keys_still_plots(tmp_path):
    from core.training import plot_losses

    plot_losses([{"step": 1, "a": 1.0}, {"step": 2, "a": 0.5, "b": 2.0}], tmp_path / "loss.png")
    assert (tmp_path / "loss.png").stat().st_size > 0


def test_a_snapshot_whose_files_disagree_is_refused(trained_pair, data, tmp_path, caplog):
    """A checkpoint copied in from another step: the steps recorded in the files disagree."""
    run = _copy(trained_pair["torch"], tmp_path)
    snap = latest(run)
    state = json.loads(snap.state.read_text())
    snap.state.unlink()
    snap.state.write_text(json.dumps({**state, "step": 1, "history": state["history"][:1]}))
    caplog.set_level(logging.ERROR, logger="age.train")
    assert _train("torch", _argv(run, data, 4, "--resume")) == 2
    assert "is inconsistent" in caplog.text and "train_state.json says step 1" in caplog.text


# --------------------------------------------------------------------------- BatchNorm, one value per channel


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_batchnorm_with_one_value_per_channel_is_refused_alike(framework, tmp_path, caplog):
    """conv_vae at 8x8 with three stride-2 blocks ends on 1x1 maps; one image means batch 1."""
    from core.errors import batch_too_small_message

    data = tmp_path / "one"
    data.mkdir()
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(data / "only.png")
    run = tmp_path / "run"
    module = importlib.import_module(f"{framework}_impl.train")
    from core import registry

    real = registry.make_config
    tiny8 = {"image_size": 8, "hidden_dims": (4, 4, 4), "latent_dim": 4}
    caplog.set_level(logging.ERROR, logger="age.train")
    try:
        import core.training as training

        training.make_config = lambda name, preset, **kw: real(name, preset, **{**kw, **tiny8})
        rc = module.main(["--model", "conv_vae", "--preset", "tiny", "--steps", "1", "--batch-size", "1",
                          "--out", str(run), "--data", str(data), "--no-progress"])
    finally:
        training.make_config = real
    assert rc == 2
    assert batch_too_small_message(1, 1, 1) in caplog.text
    assert latest(run) is None and not (run / "checkpoint.safetensors").exists()


def test_batchnorm_layers_refuse_directly_with_the_same_message():
    import torch

    from keras_impl.layers.core import BatchNorm2d as KerasBatchNorm
    from core.errors import BatchTooSmall
    from torch_impl.layers.core import BatchNorm2d as TorchBatchNorm

    with pytest.raises(BatchTooSmall) as t:
        TorchBatchNorm(3).train()(torch.zeros(1, 3, 1, 1))
    layer = KerasBatchNorm(3)
    with pytest.raises(BatchTooSmall) as k:
        layer(np.zeros((1, 1, 1, 3), np.float32), training=True)
    assert str(t.value) == str(k.value)
    assert np.isfinite(layer.moving_variance.numpy()).all()
    # two values per channel are fine in both, and eval mode never checks
    TorchBatchNorm(3).train()(torch.zeros(2, 3, 1, 1))
    layer(np.zeros((1, 1, 2, 3), np.float32), training=True)
    TorchBatchNorm(3).eval()(torch.zeros(1, 3, 1, 1))


# --------------------------------------------------------------------------- deterministic bytes


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_two_identical_runs_write_identical_files(framework, data, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for run in (a, b):
        assert _train(framework, _argv(run, data, 3)) == 0
    for name in ("checkpoint.safetensors", f"optimizer_{framework}.safetensors", "train_state.json", "config.json",
                 "checkpoints/step_0000002.safetensors"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.parametrize("torn", [False, True])
def test_a_run_from_before_snapshots_is_adopted_only_when_consistent(torn, trained_pair, data, tmp_path, caplog):
    import shutil

    from core.snapshot import SNAPSHOTS

    run = _copy(trained_pair["torch"], tmp_path)
    shutil.rmtree(run / SNAPSHOTS)  # the old layout: the three files in the run root only
    if torn:
        state = json.loads((run / "train_state.json").read_text())
        (run / "train_state.json").write_text(json.dumps({**state, "step": 1, "history": state["history"][:1]}))
    caplog.set_level(logging.WARNING, logger="age.train")
    rc = _train("torch", _argv(run, data, 4, "--resume"))
    if torn:
        assert rc == 2 and "checkpoint.safetensors is at step 2 but train_state.json at step 1" in caplog.text
        assert not (run / SNAPSHOTS).exists() or latest(run) is None
    else:
        assert rc == 0 and "adopting a run written before snapshots at step 2" in caplog.text
        assert latest(run).step == 4
