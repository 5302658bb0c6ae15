"""Seed 004's "Generative Models Report", as data: which models it trains, for how long, which
figures it draws (names, titles, the losses each plots) and the seed's prose around them.

Everything report-specific lives here (title, figures, prose); each model's part in it - its run,
step budget, flags, curves and grids - is in the model's own registration (``ModelSpec.reports``),
gathered by :func:`core.report.gather`. :mod:`core.report` only renders what they declare.

Step budget (``seed`` preset, 32x32 digits, batch 64 = 28 steps an epoch): sized so that
``make report`` - both frameworks side by side, one CPU thread each - takes about 4-5 minutes on
an idle 2-core CPU (measured: 256 s) and about 10 when the machine is shared.
The KL warm-up of the two VAEs is the seed's linear schedule, shortened from 10,000 steps to
half of each run (``step_flags``), so the KL weight reaches 1 well before the run ends.

Sample quality: every run logs FID, KID and precision/recall (digits network) once, at its last
step, on ``metrics_n`` = 898 pictures, half the 1,797 digits, so the real-vs-real floor (two
disjoint halves of the data) is measured at the same n as the models (FID depends on n). It adds
a few seconds a run.
"""

from __future__ import annotations

from core.report import LossFigure, ReportPreset, gather

NAME = "seed_004"
#: the figures the runs' curves go into (each model's ``ReportRole`` in its registration adds its
#: curves and grids, so this module names no model)
LOSS_FIGURES = (
    LossFigure(file="ae_loss.png", heading="AE loss curve", alt="AE loss curve",
               title="Autoencoder: reconstruction MSE", ylabel="MSE", logy=True, losses=()),
    LossFigure(file="vae_flows_loss.png", heading="VAE/Flows loss curves", alt="VAE/flows loss curve",
               title="VAE and VAE with planar flows: negative ELBO", ylabel="loss (recon + β·KL)", logy=True,
               losses=(), secondary_ylabel="KL weight β"),
    LossFigure(file="gan_loss.png", heading="Generator/Discriminator loss curves", alt="G/D loss curve",
               title="GAN: generator and discriminator BCE", ylabel="BCE", losses=()),
)
RUNS, FIGURES, GRIDS = gather(NAME, LOSS_FIGURES)

REPORT = ReportPreset(
    name=NAME,
    title="Generative Models Report",
    data="digits",
    runs=RUNS,
    metrics="fid,kid,pr",
    metrics_n=1797 // 2,
    loss_section="Training Process",
    loss_figures=FIGURES,
    grid_figures=GRIDS,
    kl_note=("Seed 004 warms the KL weight up linearly from 0 to 1 over the first 10,000 steps and keeps "
             "free bits of 0.5 nats per latent dimension. These runs are far shorter than 10,000 steps, so "
             "the report sizes the warm-up to each run (`--kl-warmup` = the fraction below × the run's "
             "steps): the KL weight reaches 1 halfway through and the second half trains the full ELBO. "
             "The seed's cyclical schedule is available as `--kl-schedule cyclical` but is not what these "
             "runs use."),
    budget_note=("Step counts are sized so that `make report` (this report in both frameworks, side by side, "
                 "one CPU thread each) takes about 4-5 minutes on an idle 2-core CPU and stays near 10 minutes "
                 "when other work shares the machine: {steps} optimizer steps of batch 64 on the 1,797 "
                 "embedded digits (28 steps an epoch; every epoch also writes a snapshot, grids and loss.png). "
                 "That is enough for the autoencoder to reconstruct the digits almost exactly and for both "
                 "VAEs to reconstruct them recognisably (slightly blurred; the flow VAE ends with the lower "
                 "reconstruction error). The GAN, the hardest to train (seed 004's own conclusion), gets the "
                 "most steps and draws digit-like shapes (mostly 0s, 3s, 5s and 9s), not clean digits: sharper "
                 "and more varied samples need a few thousand more steps (the same trainer command with "
                 "`--steps 5000`). The seed trained until the validation loss stabilised; this budget does not."),
)
