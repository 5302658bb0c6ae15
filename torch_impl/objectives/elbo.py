"""ELBO update (:mod:`core.objectives.elbo`; twin: ``keras_impl/objectives/elbo.py``)."""

from __future__ import annotations

from ..losses import elbo


def update(model, batch, inputs, objective):
    """The model's forward pass with the injected reparameterisation noise, then the ELBO."""
    return elbo(model(batch, inputs["eps"]), batch, inputs["eps"], inputs["kl_weight"], objective.hp.free_bits)
