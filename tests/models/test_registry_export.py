"""Export via torch and via Keras (``export.pipeline.export_checkpoint``, what ``python -m
export.onnx`` runs) for every registered model x variant, and the runtime on the exported files.

* onnxruntime's output of every part matches the framework it was exported from (<= 1e-4) on a
  batch other than the traced one;
* ``runtime.load`` of either export decodes latents like torch (<= 1e-4) for models with a prior;
  a model whose prior is ``"none"`` refuses to generate from seeds, and every model with an encoder
  reconstructs like torch's encode -> decode (mu or z).

Each case is exported once per framework per module (a few seconds each) and shared by the tests.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from core.registry import ENCODER_PART, data_range, sample_part
from tests.models.registry_cases import Case, cases, compare, part_inputs, record, run_parts, twins

TOL = 1e-4
VIA = ("torch", "keras")


class _Exports:
    def __init__(self, factory):
        self.factory, self.dirs = factory, {}

    def get(self, case: Case, via: str):
        key = (case.id, via)
        if key not in self.dirs:
            import export.pipeline as exporter
            import torch_impl

            tw = twins(case)
            root = self.factory.mktemp(f"export-{case.id}")
            ckpt = torch_impl.save_model(tw.torch, root / "model.safetensors", step=3)
            logging.getLogger("export.pipeline").setLevel(logging.WARNING)
            reports = exporter.export_checkpoint(ckpt, root / via, via=via)
            assert all(r.passed for r in reports), reports
            self.dirs[key] = root / via
        return self.dirs[key]


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> _Exports:
    return _Exports(tmp_path_factory)


def _ort(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("via", VIA)
@cases()
def test_onnx_matches_the_framework(case: Case, via: str, exports):
    from keras_impl.parts import run_part as keras_run
    from torch_impl.parts import run_part as torch_run

    folder = exports.get(case, via)
    tw = twins(case)
    parts = case.spec.parts(tw.config)
    assert sorted(p.name for p in folder.glob("*.onnx")) == sorted(f"{name}.onnx" for name in parts)
    inputs = {name: part_inputs(part, 5, seed=(5, i)) for i, (name, part) in enumerate(parts.items())}
    got = {name: {t.name: o for t, o in zip(part.outputs, _ort(folder / f"{name}.onnx").run(
        None, {t.name: x for t, x in zip(part.inputs, inputs[name])}))} for name, part in parts.items()}
    want = run_parts(torch_run if via == "torch" else keras_run, tw.torch if via == "torch" else tw.keras,
                     parts, inputs)
    record(case, f"onnx {via}", compare(got, want, TOL))


@pytest.mark.parametrize("via", VIA)
@cases()
def test_runtime_matches_torch(case: Case, via: str, exports):
    import runtime
    from torch_impl.parts import run_part

    folder = exports.get(case, via)
    tw = twins(case)
    config = tw.config
    parts = case.spec.parts(config)
    gen = sample_part(config)
    session = runtime.load(folder, providers="cpu")
    assert session.model == case.model and session.part == gen
    worst = 0.0
    z = part_inputs(parts[gen], 4, seed=21)[0]
    if case.spec.prior == "none":
        assert not session.can_generate
        with pytest.raises(runtime.UnsupportedOperation):
            session.generate(2, seed=0)
    else:
        assert session.can_generate and session.prior == case.spec.prior
        worst = compare({"decode": session.decode(z)}, {"decode": run_part(tw.torch, gen, z)[0]}, TOL, gen)
        latents = session.sample_latents(3, seed=5)
        images = session.generate(latents=latents)
        want = session.to_uint8(run_part(tw.torch, gen, latents)[0])
        assert images.shape == want.shape and np.abs(images.astype(int) - want).max() <= 1
    if ENCODER_PART in parts:
        assert session.can_reconstruct
        x = part_inputs(parts[ENCODER_PART], 3, seed=22)[0]
        x = np.clip(x, 0.0, 1.0).astype(np.float32)  # the runtime takes images in [0, 1]
        low, high = data_range(tw.torch.config)  # ... and feeds them as training did: in the model's range
        code = run_part(tw.torch, ENCODER_PART, (low + (high - low) * x).astype(np.float32))[0]
        want = run_part(tw.torch, gen, code)[0]
        got = session.decode(session.encode_latents(x))
        worst = max(worst, compare({"reconstruct": got}, {"reconstruct": want}, TOL))
        recon = session.reconstruct(x)
        assert np.abs(recon.astype(int) - session.to_uint8(want)).max() <= 1
    record(case, f"runtime {via}", worst)
