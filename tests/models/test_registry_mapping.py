"""Every registered model x variant builds in both frameworks, every canonical tensor is mapped
exactly once with the same shape, and the torch -> canonical -> Keras -> canonical -> torch bridge
is bit-identical."""

from __future__ import annotations

import numpy as np

from tests.models.registry_cases import Case, cases, twins


def _leaf_variables(km) -> list:
    from keras_impl.layers.core import torch_named_params
    from keras_impl.layers.transformer import PackedVariable

    out = []
    for _, var, _ in torch_named_params(km):
        out.extend(var.variables if isinstance(var, PackedVariable) else [var])
    return out


@cases()
def test_every_parameter_is_mapped_exactly_once(case: Case):
    from keras_impl.checkpoint import expected_shapes as keras_shapes
    from keras_impl.layers.core import torch_named_params

    tw = twins(case)
    tm, km = tw.torch, tw.keras
    assert type(tm).__name__ == type(km).__name__ == case.spec.class_name
    want = {n: tuple(t.shape) for n, t in tm.state_dict().items() if not n.endswith("num_batches_tracked")}
    names = [n for n, _, _ in torch_named_params(km)]
    dupes = sorted({n for n in names if names.count(n) > 1})
    assert not dupes, f"{case.id}: torch names reported twice by the Keras twin: {dupes}"
    got = keras_shapes(km)
    missing, unexpected = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    assert not missing and not unexpected, f"{case.id}: missing in Keras {missing}, unexpected {unexpected}"
    mismatched = {n: (want[n], got[n]) for n in want if want[n] != got[n]}
    assert not mismatched, f"{case.id}: shape (torch, keras) differs: {mismatched}"
    leaves = _leaf_variables(km)
    assert len({id(v) for v in leaves}) == len(leaves), f"{case.id}: a Keras variable is mapped under two names"
    unmapped = [v.path for v in km.variables if id(v) not in {id(x) for x in leaves}]
    assert not unmapped, f"{case.id}: Keras variables not in the checkpoint: {unmapped}"


@cases()
def test_bridge_round_trip_is_bit_identical(case: Case, tmp_path):
    import keras_impl
    import torch_impl
    from core.checkpoint import load_checkpoint
    from keras_impl.checkpoint import model_tensors as keras_tensors
    from torch_impl.checkpoint import model_tensors as torch_tensors

    tw = twins(case)
    torch_impl.save_model(tw.torch, tmp_path / "t.safetensors", step=7)
    km = keras_impl.load_model(tmp_path / "t.safetensors")
    keras_impl.save_model(km, tmp_path / "k.safetensors", step=7)
    ckpt = load_checkpoint(tmp_path / "k.safetensors")
    assert (ckpt.model, ckpt.framework, ckpt.step, ckpt.config) == (case.model, "keras", 7, tw.config)
    back = torch_impl.load_model(tmp_path / "k.safetensors")
    original, via_keras, final = tw.tensors, keras_tensors(km), torch_tensors(back)
    assert set(original) == set(via_keras) == set(final)
    for name in original:
        assert original[name].dtype == final[name].dtype, name
        assert np.array_equal(original[name], via_keras[name]), f"{case.id}: {name} changed torch -> keras"
        assert np.array_equal(original[name], final[name]), f"{case.id}: {name} changed on the round trip"
