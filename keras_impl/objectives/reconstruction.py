"""Autoencoder update (:mod:`core.objectives.reconstruction`; twin: ``torch_impl/objectives/reconstruction.py``)."""

from __future__ import annotations

from ..losses import mean_squared_error


def update(model, batch, inputs, objective):
    return {"loss": mean_squared_error(model(batch, training=True), batch)}
