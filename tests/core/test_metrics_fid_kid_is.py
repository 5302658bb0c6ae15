"""core.metrics.frechet / kid / inception_score against pytorch-fid, torch-fidelity and torchmetrics.

The references run on the same features (float64 tensors where they take torch); no network,
no weights: only their metric math is called.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from core.metrics.frechet import frechet_distance, frechet_from_stats, gaussian_stats
from core.metrics.inception_score import inception_score, log_softmax, softmax
from core.metrics.kid import kernel_inception_distance, mmd2_unbiased, polynomial_kernel


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def feature_pair(n: int, d: int, seed: int, correlated: bool = False, shift: float = 0.3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = rng.standard_normal((n, d)) * 1.2 + shift
    if correlated:
        mix = rng.standard_normal((d, d)) / np.sqrt(d)
        x = x @ mix + 0.5 * x
        y = y @ (mix + 0.1 * rng.standard_normal((d, d)) / np.sqrt(d))
    return x, y


# --------------------------------------------------------------------------- FID


@pytest.mark.parametrize("n,d,correlated", [(200, 16, False), (500, 64, False), (400, 32, True)])
def test_fid_matches_pytorch_fid(n, d, correlated):
    from pytorch_fid.fid_score import calculate_frechet_distance

    x, y = feature_pair(n, d, seed=d, correlated=correlated)
    mu1, s1 = gaussian_stats(x)
    mu2, s2 = gaussian_stats(y)
    np.testing.assert_array_equal(s1, np.cov(x, rowvar=False))
    ref = float(calculate_frechet_distance(mu1, s1, mu2, s2))
    ours = frechet_distance(x, y)
    assert ours == frechet_from_stats(mu1, s1, mu2, s2)
    assert rel(ours, ref) <= 1e-6, (ours, ref)


@pytest.mark.parametrize("n,d,correlated", [(200, 16, False), (400, 32, True)])
def test_fid_matches_torchmetrics_compute_fid(n, d, correlated):
    from torchmetrics.image.fid import _compute_fid

    x, y = feature_pair(n, d, seed=d + 1, correlated=correlated)
    mu1, s1 = gaussian_stats(x)
    mu2, s2 = gaussian_stats(y)
    t = [torch.from_numpy(a) for a in (mu1, s1, mu2, s2)]
    ref = float(_compute_fid(*t))
    assert rel(frechet_distance(x, y), ref) <= 1e-6


def test_fid_identical_symmetric_nonnegative():
    x, y = feature_pair(300, 24, seed=5, correlated=True)
    same = frechet_distance(x, x)
    assert isinstance(same, float) and 0.0 <= same < 1e-9
    ab, ba = frechet_distance(x, y), frechet_distance(y, x)
    assert isinstance(ab, float) and ab > 0
    assert rel(ab, ba) <= 1e-10
    # a pure mean shift: FID is exactly ||delta||^2
    delta = np.linspace(-1, 1, 24)
    assert rel(frechet_distance(x, x + delta), float(delta @ delta)) <= 1e-8


def test_fid_rank_deficient_is_finite_and_warns():
    x, y = feature_pair(20, 64, seed=7)
    with pytest.warns(RuntimeWarning, match="n < d"):
        value = frechet_distance(x, y)
    assert isinstance(value, float) and np.isfinite(value) and value >= 0
    with pytest.warns(RuntimeWarning, match="n < d"):
        gaussian_stats(x)
    # enough samples: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frechet_distance(*feature_pair(80, 64, seed=7))


# --------------------------------------------------------------------------- KID


@pytest.mark.parametrize("m,d", [(50, 16), (120, 64)])
def test_mmd2_matches_references(m, d):
    from torch_fidelity.metric_kid import kernel_mmd, kernel_poly, mmd2
    from torchmetrics.image.kid import poly_mmd

    x, y = feature_pair(m, d, seed=m, correlated=True)
    ours = mmd2_unbiased(x, y)
    tf = float(kernel_mmd(x, y))  # torch-fidelity defaults: poly, degree 3, gamma 1/d, coef0 1
    tm = float(poly_mmd(torch.from_numpy(x), torch.from_numpy(y)))
    assert rel(ours, tf) <= 1e-6 and rel(ours, tm) <= 1e-6, (ours, tf, tm)
    # non-default kernel parameters, the same Gram matrices
    kw = dict(kid_kernel_poly_degree=2, kid_kernel_poly_gamma=0.5, kid_kernel_poly_coef0=0.25)
    np.testing.assert_allclose(polynomial_kernel(x, y, 2, 0.5, 0.25), kernel_poly(x, y, **kw), rtol=1e-12)
    ref2 = float(mmd2(kernel_poly(x, x, **kw), kernel_poly(x, y, **kw), kernel_poly(y, y, **kw)))
    assert rel(mmd2_unbiased(x, y, degree=2, gamma=0.5, coef0=0.25), ref2) <= 1e-6


def test_kid_full_set_matches_references():
    from torch_fidelity.metric_kid import kid_features_to_metric
    from torchmetrics.image.kid import KernelInceptionDistance

    n = 100
    x, y = feature_pair(n, 32, seed=11, correlated=True)
    mean, std = kernel_inception_distance(x, y, subsets=1, subset_size=n)
    assert std == 0.0
    tf = kid_features_to_metric(torch.from_numpy(x), torch.from_numpy(y), kid_subsets=1, kid_subset_size=n,
                                verbose=False)
    assert rel(mean, tf["kernel_inception_distance_mean"]) <= 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=1, subset_size=n)
    kid.update(torch.from_numpy(x), real=True)
    kid.update(torch.from_numpy(y), real=False)
    tm_mean, tm_std = kid.compute()
    assert rel(mean, float(tm_mean)) <= 1e-6 and float(tm_std) == 0.0
    # subset_size above the sample count is clipped to it (the references raise instead)
    assert kernel_inception_distance(x, y, subsets=1, subset_size=10_000)[0] == pytest.approx(mean, rel=1e-12)


def test_kid_subsets_std_is_ddof0_and_seeded():
    x, y = feature_pair(200, 16, seed=3)
    mean, std = kernel_inception_distance(x, y, subsets=5, subset_size=60, seed=4)
    rng = np.random.default_rng(4)
    scores = []
    for _ in range(5):
        xi = rng.choice(200, 60, replace=False)
        yi = rng.choice(200, 60, replace=False)
        scores.append(mmd2_unbiased(x[xi], y[yi]))
    assert mean == pytest.approx(np.mean(scores), rel=1e-12)
    assert std == pytest.approx(np.std(scores, ddof=0), rel=1e-12)
    assert kernel_inception_distance(x, y, subsets=5, subset_size=60, seed=4) == (mean, std)


def test_kid_same_distribution_near_zero_shifted_positive():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 400, 16))
    same_mean, same_std = kernel_inception_distance(a, b, subsets=10, subset_size=200)
    shifted_mean, _ = kernel_inception_distance(a, b + 0.5, subsets=10, subset_size=200)
    assert abs(same_mean) < 0.01 and same_std >= 0
    assert shifted_mean > 0.1 > 10 * abs(same_mean)


# --------------------------------------------------------------------------- IS


def random_logits(n: int, c: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, c)) * 3.0


@pytest.mark.parametrize("n,c,splits", [(500, 10, 10), (333, 7, 4), (64, 1000, 1)])
def test_is_matches_torch_fidelity(n, c, splits):
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = random_logits(n, c, seed=n)
    ref = isc_features_to_metric(torch.from_numpy(logits), splits=splits, shuffle=False)
    for mean, std in (inception_score(softmax(logits), splits), inception_score(logits, splits, from_logits=True)):
        assert rel(mean, ref["inception_score_mean"]) <= 1e-6
        if splits > 1:
            assert rel(std, ref["inception_score_std"]) <= 1e-6
    # torch-fidelity's default shuffle is RandomState(2020).permutation of the rows
    ref_shuffled = isc_features_to_metric(torch.from_numpy(logits), splits=splits)
    perm = np.random.RandomState(2020).permutation(n)
    mean, std = inception_score(softmax(logits)[perm], splits)
    assert rel(mean, ref_shuffled["inception_score_mean"]) <= 1e-6


def test_is_matches_torchmetrics_with_ddof1():
    from torchmetrics.image.inception import InceptionScore

    n, splits = 200, 5
    logits = random_logits(n, 12, seed=9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        metric = InceptionScore(feature=torch.nn.Identity(), splits=splits)
    metric.update(torch.from_numpy(logits))
    torch.manual_seed(123)
    perm = torch.randperm(n).numpy()
    torch.manual_seed(123)  # compute() draws the same permutation
    tm_mean, tm_std = metric.compute()
    mean, std = inception_score(logits[perm], splits, from_logits=True, ddof=1)
    assert rel(mean, float(tm_mean)) <= 1e-6 and rel(std, float(tm_std)) <= 1e-6


def test_is_extremes():
    uniform = np.full((100, 10), 0.1)
    mean, std = inception_score(uniform, splits=5)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    c = 8
    confident = np.eye(c)[np.arange(400) % c]  # one-hot, every class equally often in each split
    mean, std = inception_score(confident, splits=10)
    assert mean == pytest.approx(c, rel=1e-12) and std == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(softmax(np.log(confident + 1e-300)), confident, atol=1e-12)
    np.testing.assert_allclose(np.exp(log_softmax([[1000.0, 0.0]])), [[1.0, 0.0]])


# --------------------------------------------------------------------------- bad inputs

GOOD = np.random.default_rng(1).standard_normal((10, 4))


@pytest.mark.parametrize("fn", [frechet_distance, kernel_inception_distance, mmd2_unbiased])
@pytest.mark.parametrize("bad,word", [
    (np.zeros(10), "2-D"),
    (np.zeros((10, 5)), "dimension"),
    (np.where(np.eye(10, 4) > 0, np.nan, 0.0), "NaN"),
    (np.zeros((1, 4)), "at least 2"),
])
def test_bad_features_raise_naming_the_argument(fn, bad, word):
    first, second = ("x", "y") if fn is mmd2_unbiased else ("real", "fake")
    with pytest.raises(ValueError, match=f"^{second}: .*{word}"):
        fn(GOOD, bad)
    if word != "dimension":
        with pytest.raises(ValueError, match=f"^{first}: .*{word}"):
            fn(bad, GOOD)


def test_bad_parameters_raise_naming_the_argument():
    with pytest.raises(ValueError, match="^subsets"):
        kernel_inception_distance(GOOD, GOOD, subsets=0)
    with pytest.raises(ValueError, match="^subset_size"):
        kernel_inception_distance(GOOD, GOOD, subset_size=1)
    with pytest.raises(ValueError, match="^degree"):
        mmd2_unbiased(GOOD, GOOD, degree=0)
    with pytest.raises(ValueError, match="^sigma2"):
        frechet_from_stats(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
    with pytest.raises(ValueError, match="^mu2"):
        frechet_from_stats(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="^features"):
        gaussian_stats(np.zeros((1, 3)))
    probs = softmax(random_logits(20, 5, seed=0))
    for bad, word in ((probs[0], "2-D"), (np.where(probs > 0.5, np.nan, probs), "NaN"),
                      (-probs, ">= 0"), (probs * 2, "sum to 1")):
        with pytest.raises(ValueError, match=f"^probs: .*{word}"):
            inception_score(bad, splits=2)
    for splits in (0, 21, 2.5):
        with pytest.raises(ValueError, match="^splits"):
            inception_score(probs, splits=splits)
