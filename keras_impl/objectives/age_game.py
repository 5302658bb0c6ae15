"""A.G.E. updates (:mod:`core.objectives.age_game`; twin: ``torch_impl/objectives/age_game.py``).

The model provides ``encode(image)`` (a unit vector per image) and ``generate(z)``. A term whose
weight is 0 is neither computed nor run through the networks (it logs 0); every pass is in
training mode, in the order the core docstring gives (BatchNorm's running statistics follow it).
"""

from __future__ import annotations

import tensorflow as tf
from keras import ops

from ..losses import gaussian_fit_kl, latent_cosine, mean_absolute_error


def _total(terms: dict, zero):
    """Σ weight · value over the computed terms (a weight's sign is part of it)."""
    parts = [w * v for w, v in terms.values() if v is not None]
    return sum(parts[1:], parts[0]) if parts else zero


def _logs(prefix: str, terms: dict, zero) -> dict:
    return {f"{prefix}_{k}": zero if v is None else v for k, (_, v) in terms.items()}


def encoder(model, batch, inputs, objective):
    """kl_real·KL(e(x)) - kl_fake·KL(e(g(z))) + match_x·L1(g(e(x)), x) + match_z·cos(e(g(z)), z);
    g(z) without a gradient into g (only the encoder's optimizer steps)."""
    hp, z = objective.hp, inputs["prior"]
    zero = ops.zeros((), dtype=batch.dtype)
    kl_real = match_x = kl_fake = match_z = None
    if hp.encoder_kl_real or hp.encoder_match_x:
        ex = model.encode(batch, training=True)
        if hp.encoder_kl_real:
            kl_real = gaussian_fit_kl(ex)
        if hp.encoder_match_x:
            match_x = mean_absolute_error(model.generate(ex, training=True), batch)
    if hp.encoder_kl_fake or hp.encoder_match_z:
        fake = tf.stop_gradient(model.generate(z, training=True))
        egz = model.encode(fake, training=True)
        if hp.encoder_kl_fake:
            kl_fake = gaussian_fit_kl(egz)
        if hp.encoder_match_z:
            match_z = latent_cosine(egz, z)
    terms = {"kl_real": (hp.encoder_kl_real, kl_real), "kl_fake": (-hp.encoder_kl_fake, kl_fake),
             "match_x": (hp.encoder_match_x, match_x), "match_z": (hp.encoder_match_z, match_z)}
    return {"encoder": _total(terms, zero), **_logs("e", terms, zero)}


def generator(model, batch, inputs, objective):
    """kl_fake·KL(e(g(z))) + match_z·cos(e(g(z)), z) + match_x·L1(g(e(x)), x); the encoder is
    frozen (only the generator's optimizer steps)."""
    hp, z = objective.hp, inputs["prior"]
    zero = ops.zeros((), dtype=batch.dtype)
    kl_fake = match_z = match_x = None
    if hp.generator_kl_fake or hp.generator_match_z:
        egz = model.encode(model.generate(z, training=True), training=True)
        if hp.generator_kl_fake:
            kl_fake = gaussian_fit_kl(egz)
        if hp.generator_match_z:
            match_z = latent_cosine(egz, z)
    if hp.generator_match_x:
        match_x = mean_absolute_error(model.generate(model.encode(batch, training=True), training=True), batch)
    terms = {"kl_fake": (hp.generator_kl_fake, kl_fake), "match_z": (hp.generator_match_z, match_z),
             "match_x": (hp.generator_match_x, match_x)}
    return {"generator": _total(terms, zero), **_logs("g", terms, zero)}
