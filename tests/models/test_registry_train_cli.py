"""The training CLIs for every registered model x variant, in-process (``torch_impl.train.main``,
``keras_impl.train.main``), tiny preset, batch 4, on the embedded digits:

* a 2-step run resumed (``--resume``, no other flags) to 3 steps ends with the same weights as a
  straight 3-step run: bit-identical in torch, <= 1e-6 in Keras (its graphs are re-traced);
* ``hyperparameters.json`` is written, and ``--resume`` restores the seed and batch size from it
  (the resumed run is given neither);
* one step from the same ``--seed`` through both CLIs gives the same canonical weights (initial
  weights, data order and noise are all drawn in core).
"""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from tests.models.registry_cases import Case, cases, compare, objective_of, record

FRAMEWORKS = ("torch", "keras")
SEED, BATCH = 3, 4
CROSS_TOL = 1e-5


def _variant_flags(case: Case) -> list[str] | None:
    """The variant's config overrides as the trainers' flags, or None when one has no flag."""
    flags = []
    for name, value in case.overrides.items():
        if name not in case.spec.config_flags or isinstance(value, (tuple, list, dict)):
            return None
        flags += [f"--{name.replace('_', '-')}", str(value)]
    return flags


class _Runs:
    def __init__(self, factory):
        self.factory, self.done = factory, {}

    def _main(self, framework: str, argv: list[str]) -> None:
        rc = importlib.import_module(f"{framework}_impl.train").main(argv)
        assert rc == 0, f"{framework}_impl.train {' '.join(argv)} exited {rc}"

    def get(self, case: Case, framework: str):
        """(resumed run dir, straight run dir) of ``case`` in ``framework``."""
        key = (case.id, framework)
        if key not in self.done:
            flags = _variant_flags(case)
            if flags is None:
                pytest.skip(f"{case.id}: variant overrides {case.overrides} have no trainer flags "
                            f"(ModelSpec.config_flags {case.spec.config_flags})")
            root = self.factory.mktemp(f"train-{case.id}-{framework}")
            common = ["--data", "digits", "--samples", "4", "--checkpoint-every", "1", "--no-progress",
                      "--log-level", "WARNING"]
            start = ["--model", case.model, "--preset", "tiny", "--seed", str(SEED), "--batch-size", str(BATCH),
                     *flags, *common]
            resumed, straight = root / "resumed", root / "straight"
            self._main(framework, [*start, "--steps", "2", "--out", str(resumed)])
            self._main(framework, ["--resume", "--steps", "3", "--out", str(resumed), *common])
            self._main(framework, [*start, "--steps", "3", "--out", str(straight)])
            self.done[key] = (resumed, straight)
        return self.done[key]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> _Runs:
    # loss.png is drawn after every run (matplotlib, ~0.5 s); tests/frameworks checks the plot, these
    # 60 runs need not draw it
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("core.training.plot_losses", lambda history, path: None)
        yield _Runs(tmp_path_factory)


def _tensors(path):
    from core.checkpoint import load_checkpoint

    return load_checkpoint(path).tensors


@pytest.mark.parametrize("framework", FRAMEWORKS)
@cases()
def test_resume_gives_the_straight_run_and_restores_the_settings(case: Case, framework: str, runs):
    from core.checkpoint import load_checkpoint

    resumed, straight = runs.get(case, framework)
    a, b = load_checkpoint(resumed / "checkpoint.safetensors"), load_checkpoint(straight / "checkpoint.safetensors")
    assert a.step == b.step == 3 and a.config == b.config == case.config("tiny")
    assert a.framework == b.framework == framework
    if framework == "torch":
        for name in b.tensors:
            assert np.array_equal(a.tensors[name], b.tensors[name]), f"{case.id}: {name} differs after --resume"
        record(case, "resume torch", 0.0)
    else:
        record(case, "resume keras", compare(a.tensors, b.tensors, 1e-6, "resumed"))
    settings = json.loads((resumed / "hyperparameters.json").read_text())
    planned = json.loads((straight / "hyperparameters.json").read_text())
    # the resumed run keeps the length it was planned with (schedules spanning the run use it)
    assert settings.pop("schedule_steps") == 2 and planned.pop("schedule_steps") == 3
    assert settings == planned
    assert (settings["model"], settings["seed"], settings["batch_size"]) == (case.model, SEED, BATCH)
    assert settings["objective"] == case.spec.objective.name
    assert set(settings["hyperparameters"]) == {f.name for f in
                                                 __import__("dataclasses").fields(case.spec.objective.hyperparameters)}
    history = [h["step"] for h in json.loads((resumed / "train_state.json").read_text())["history"]]
    assert history == [1, 2, 3]


@cases()
def test_one_step_from_the_same_seed_agrees_across_frameworks(case: Case, runs):
    """Same weights after step 1 to 1e-5, except Adam's sign-noise elements: its first step is about
    lr * sign(g), so where a gradient is at its float-noise level (e.g. a bias whose gradient cancels
    exactly) the frameworks may step opposite ways. At most 0.1% of the elements may do so, by at most
    2 lr (the per-update test in test_registry_parity.py tells them apart by their gradients)."""
    step1 = {fw: _tensors(runs.get(case, fw)[1] / "checkpoints" / "step_0000001.safetensors") for fw in FRAMEWORKS}
    t, k = step1["torch"], step1["keras"]
    assert set(t) == set(k)
    lr = max(o.lr for o in objective_of(case, case.config("tiny")).optimizers())
    total = sum(v.size for v in t.values())
    worst, noise = 0.0, 0
    for name in t:
        diff = np.abs(k[name].astype(np.float64) - t[name])
        assert float(diff.max(initial=0.0)) <= 2 * lr * (1 + 1e-3) + CROSS_TOL, \
            f"{case.id}: step 1/{name}: max |diff| {float(diff.max()):.3e} is more than one Adam step"
        noise += int(np.count_nonzero(diff > CROSS_TOL))
        worst = max(worst, float(diff[diff <= CROSS_TOL].max(initial=0.0)))
    assert noise <= 1e-3 * total, f"{case.id}: {noise} of {total} weights differ by more than {CROSS_TOL:g} after one step"
    record(case, "cli 1 step t/k", worst)
    record(case, "cli noise elts", noise)
