"""core.metrics.manifold: improved precision/recall and density/coverage.

Checked against prdc 0.2 (``compute_prdc``: precision, recall, density, coverage) and
torch-fidelity 0.4.0 (``metric_prc.calculate_precision_recall_{part,full}`` on feature
tensors) on the same float64 features. torchmetrics 1.9 has no precision/recall or
density/coverage metric for generative models, so there is nothing there to compare with.

The data are continuous random draws, so no distance equals a radius exactly and the
open-ball (prdc) and closed-ball (torch-fidelity) conventions give the same counts; the
values are fractions of counts and agree exactly.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from core.metrics.manifold import density_coverage, knn_radii, precision_recall

prdc = pytest.importorskip("prdc")


def _prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict:
    with contextlib.redirect_stdout(io.StringIO()):  # compute_prdc prints the set sizes
        return prdc.compute_prdc(real, fake, nearest_k=k)


def _feature_sets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(20240611)
    d = 32
    real = rng.standard_normal((300, d))
    fake = rng.standard_normal((400, d))
    # correlated real (random linear map), fake shifted and scaled
    a = rng.standard_normal((d, d)) / np.sqrt(d)
    real_c = rng.standard_normal((400, d)) @ a
    fake_c = 1.2 * (rng.standard_normal((300, d)) @ a) + 0.3
    # partial overlap: a mixture of two clusters against one of them
    real_m = np.concatenate([rng.standard_normal((200, d)), rng.standard_normal((150, d)) + 4.0])
    fake_m = rng.standard_normal((250, d)) * 0.9 + 0.2
    return {
        "same-distribution": (real, fake),
        "correlated-shifted": (real_c, fake_c),
        "mixture-vs-cluster": (real_m, fake_m),
    }


SETS = _feature_sets()


@pytest.mark.parametrize("name", sorted(SETS))
@pytest.mark.parametrize("k", [3, 5])
def test_agrees_with_prdc(name: str, k: int) -> None:
    real, fake = SETS[name]
    ref = _prdc(real, fake, k)
    p, r = precision_recall(real, fake, k=k)
    dens, cov = density_coverage(real, fake, k=k)
    np.testing.assert_allclose(
        [p, r, dens, cov],
        [ref["precision"], ref["recall"], ref["density"], ref["coverage"]],
        rtol=1e-12,
        atol=0,
    )
    # non-degenerate cases: the comparison actually discriminates
    assert 0.0 < cov <= 1.0 and dens > 0.0


@pytest.mark.parametrize(
    ("name", "save_cpu_ram"),
    [("same-distribution", False), ("correlated-shifted", True), ("mixture-vs-cluster", False)],
)
def test_precision_recall_agrees_with_torch_fidelity(name: str, save_cpu_ram: bool) -> None:
    torch = pytest.importorskip("torch")
    metric_prc = pytest.importorskip("torch_fidelity.metric_prc")
    real, fake = SETS[name]
    k = 3
    fn = (
        metric_prc.calculate_precision_recall_part
        if save_cpu_ram
        else metric_prc.calculate_precision_recall_full
    )
    # torch-fidelity's convention: features_1 = generated, features_2 = real
    ref_p, ref_r = fn(
        torch.from_numpy(fake), torch.from_numpy(real), neighborhood=k, batch_size=128
    )
    p, r = precision_recall(real, fake, k=k)
    # torch-fidelity averages float32 flags: its value is the count / n rounded to float32
    assert p == pytest.approx(ref_p, rel=1e-6, abs=0)
    assert r == pytest.approx(ref_r, rel=1e-6, abs=0)
    # ... and the underlying counts are identical
    assert round(p * len(fake)) == round(ref_p * len(fake))
    assert round(r * len(real)) == round(ref_r * len(real))


def test_knn_radii_brute_force() -> None:
    real = SETS["correlated-shifted"][0]
    full = np.sqrt(((real[:, None, :] - real[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(full, np.inf)
    for k in (1, 3, 7):
        expected = np.sort(full, axis=1)[:, k - 1]
        np.testing.assert_allclose(knn_radii(real, k), expected, rtol=1e-12)
        np.testing.assert_allclose(knn_radii(real, k, batch_size=17), expected, rtol=1e-12)


def test_duplicates_count_as_neighbours_at_distance_zero() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 4))
    x = np.concatenate([x, x[:1]])  # sample 0 twice
    radii = knn_radii(x, 1)
    assert radii[0] == pytest.approx(0.0, abs=1e-6) and radii[-1] == pytest.approx(0.0, abs=1e-6)
    assert (radii[1:-1] > 0.01).all()


@pytest.mark.parametrize("batch_size", [5, 64, 299])
def test_blocked_equals_one_block(batch_size: int) -> None:
    real, fake = SETS["mixture-vs-cluster"]
    whole = max(len(real), len(fake))
    assert precision_recall(real, fake, k=3, batch_size=batch_size) == precision_recall(
        real, fake, k=3, batch_size=whole
    )
    assert density_coverage(real, fake, k=5, batch_size=batch_size) == density_coverage(
        real, fake, k=5, batch_size=whole
    )


def test_deterministic() -> None:
    real, fake = SETS["same-distribution"]
    assert precision_recall(real, fake) == precision_recall(real, fake)
    assert density_coverage(real, fake) == density_coverage(real, fake)


def test_identical_sets() -> None:
    real = SETS["same-distribution"][0]
    k = 5
    assert precision_recall(real, real.copy(), k=k) == (1.0, 1.0)
    dens, cov = density_coverage(real, real.copy(), k=k)
    assert cov == 1.0
    # each open ball holds its centre and its k-1 nearer neighbours: density exactly 1,
    # barring rounding on the k-th neighbour's sphere
    assert dens == pytest.approx(1.0, abs=5.0 / (k * len(real)))


def test_disjoint_far_apart_sets() -> None:
    rng = np.random.default_rng(2)
    real = rng.standard_normal((200, 16))
    fake = rng.standard_normal((150, 16)) + 100.0
    assert precision_recall(real, fake) == (0.0, 0.0)
    assert density_coverage(real, fake) == (0.0, 0.0)


def test_fake_in_sub_region_of_real() -> None:
    rng = np.random.default_rng(3)
    real = rng.uniform(-1.0, 1.0, size=(1000, 2))
    fake = rng.uniform(-0.25, 0.25, size=(500, 2))  # 1/16 of the real square
    p, r = precision_recall(real, fake)
    assert p > 0.95
    assert r < 0.2
    dens, cov = density_coverage(real, fake)
    assert cov < 0.2
    # the fakes lie where the real samples are as dense as anywhere: normal fidelity
    assert 0.8 < dens < 1.2


def test_precision_recall_swap_symmetry() -> None:
    real, fake = SETS["correlated-shifted"]
    p, r = precision_recall(real, fake)
    p2, r2 = precision_recall(fake, real)
    assert (p, r) == (r2, p2)


def test_accepts_float32_and_lists() -> None:
    real, fake = SETS["same-distribution"]
    p32 = precision_recall(real.astype(np.float32), fake.astype(np.float32))
    ref = precision_recall(real.astype(np.float32).astype(np.float64), fake.astype(np.float32))
    assert p32 == ref
    small = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.5], [2.0, 2.5], [3.0, 0.5]]
    assert density_coverage(small, small, k=2)[1] == 1.0


@pytest.mark.parametrize(
    ("real", "fake", "kwargs", "name"),
    [
        (np.zeros(10), np.zeros((10, 2)), {}, "real"),
        (np.zeros((10, 2)), np.zeros((10, 2, 1)), {}, "fake"),
        (np.zeros((10, 2)), np.zeros((10, 3)), {}, "feature dimension 3 differs"),
        (np.full((10, 2), np.nan), np.zeros((10, 2)), {}, "real"),
        (np.zeros((10, 2)), np.full((10, 2), np.inf), {}, "fake"),
        (np.zeros((3, 2)), np.zeros((10, 2)), {"k": 3}, "real"),
        (np.zeros((0, 2)), np.zeros((10, 2)), {}, "real"),
        (np.zeros((10, 2)), np.zeros((10, 2)), {"k": 0}, "k"),
        (np.zeros((10, 2)), np.zeros((10, 2)), {"k": 2.5}, "k"),
        (np.zeros((10, 2)), np.zeros((10, 2)), {"k": True}, "k"),
        (np.zeros((10, 2)), np.zeros((10, 2)), {"batch_size": 0}, "batch_size"),
        (np.array([["a", "b"]] * 10), np.zeros((10, 2)), {}, "real"),
    ],
)
@pytest.mark.parametrize("fn", [precision_recall, density_coverage])
def test_bad_inputs(real, fake, kwargs, name, fn) -> None:
    with pytest.raises(ValueError, match=name):
        fn(real, fake, **kwargs)


def test_fake_sample_count_rules() -> None:
    real = np.random.default_rng(4).standard_normal((10, 2))
    few = real[:2] + 0.01
    with pytest.raises(ValueError, match="fake"):
        precision_recall(real, few, k=3)  # fake radii need M > k
    dens, cov = density_coverage(real, few, k=3)  # only real radii: any M >= 1
    assert 0.0 <= cov <= 1.0 and dens >= 0.0
