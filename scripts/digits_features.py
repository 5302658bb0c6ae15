"""Train the built-in digits feature network and export it to ONNX (``core/metrics/networks/digits.onnx``).

    python scripts/digits_features.py [--seed 0] [--epochs 40] [--out core/metrics/networks]

Why it exists: Inception-v3 features (FID, KID, precision/recall, IS) need a weights file that no
wheel ships and nothing here may download, so the evaluation needs a feature network that works
offline on the embedded data. This is a small CNN classifier trained on the bundled digit scans
(scikit-learn's copy of the UCI handwritten digits), exactly the pixels training reads: the
digits prepared by :func:`core.data.prepare_digits` at 28 x 28 and loaded greyscale (luma) in
[0, 1]. Metrics computed with its features are **not comparable** with Inception ones; every
output says which network made the features.

Recipe (all from ``--seed``): a stratified 80 / 20 split of the 1,797 scans (held out: the 20 %,
never trained on); the network Conv(1->32, 3, pad 1) -> ReLU -> MaxPool 2 -> Conv(32->64, 3,
pad 1) -> ReLU -> MaxPool 2 -> Conv(64->64, 3, pad 1) -> ReLU -> MaxPool 2 (3 x 3) -> flatten ->
Linear(576->128) -> ReLU = the 128-d ``features``
(FID/KID/precision-recall/density-coverage) -> Linear(128->10) = the ``logits`` (Inception Score
with 10 classes); Adam 1e-3, batch 64, random shifts of up to 2 pixels as augmentation (generated
digits are not centred like the scans). torch runs single-threaded and deterministic, so the same
seed gives the same weights. The held-out accuracy is printed and written to ``digits.json`` beside
the ONNX file, with the seed, the split and the input convention.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.data import ImageFolder, prepare_digits  # noqa: E402

log = logging.getLogger("digits_features")

SIZE = 28
FEATURES = 128
CLASSES = 10
MAX_SHIFT = 2


def load_digits_split(seed: int, holdout: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, held-out images, held-out labels): float32 (n, 1, 28, 28) in
    [0, 1], stratified per class from ``seed``."""
    data = ImageFolder.open(prepare_digits(SIZE), SIZE, channels=1)
    labels = np.array([int(data.classes[i]) for i in data.labels])
    images = data.load(np.arange(len(data)))
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), bool)
    for c in range(CLASSES):
        idx = np.flatnonzero(labels == c)
        held[rng.permutation(idx)[: int(round(holdout * len(idx)))]] = True
    return images[~held], labels[~held], images[held], labels[held]


def build(torch):
    from torch import nn

    class DigitsFeatures(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten(), nn.Linear(64 * 3 * 3, FEATURES), nn.ReLU())
            self.head = nn.Linear(FEATURES, CLASSES)

        def forward(self, x):
            features = self.body(x)
            return features, self.head(features)

    return DigitsFeatures()


def shifted(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image moved by up to MAX_SHIFT pixels in x and y (zero fill)."""
    out = np.zeros_like(batch)
    for i, (dy, dx) in enumerate(rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, (len(batch), 2))):
        src = batch[i, :, max(0, -dy) : SIZE - max(0, dy), max(0, -dx) : SIZE - max(0, dx)]
        out[i, :, max(0, dy) : max(0, dy) + src.shape[1], max(0, dx) : max(0, dx) + src.shape[2]] = src
    return out


def train(seed: int, epochs: int):
    """The trained network and its held-out accuracy. torch runs single-threaded and deterministic
    meanwhile; its previous settings are put back afterwards (a caller in the same process, such as
    the test suite, keeps its own)."""
    import torch

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        return _train(torch, seed, epochs)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _train(torch, seed: int, epochs: int):
    torch.manual_seed(seed)
    x_train, y_train, x_held, y_held = load_digits_split(seed)
    model = build(torch)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng([seed, 1])
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(x_train))
        for start in range(0, len(order), 64):
            idx = order[start : start + 64]
            x = torch.from_numpy(shifted(x_train[idx], rng))
            loss = torch.nn.functional.cross_entropy(model(x)[1], torch.from_numpy(y_train[idx]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        log.info("epoch %d/%d: loss %.4f", epoch + 1, epochs, float(loss))
    model.eval()
    with torch.no_grad():
        predicted = model(torch.from_numpy(x_held))[1].argmax(1).numpy()
    return model, float(np.mean(predicted == y_held)), (len(x_train), len(x_held))


def export(model, out: Path, info: dict) -> Path:
    import torch

    out.mkdir(parents=True, exist_ok=True)
    path = out / "digits.onnx"
    torch.onnx.export(model, (torch.zeros(2, 1, SIZE, SIZE),), str(path), input_names=["image"],
                      output_names=["features", "logits"], opset_version=17, dynamo=False,
                      dynamic_axes={"image": {0: "batch"}, "features": {0: "batch"}, "logits": {0: "batch"}})
    (out / "digits.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "core" / "metrics" / "networks"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    model, accuracy, (n_train, n_held) = train(args.seed, args.epochs)
    info = {"network": "digits", "seed": args.seed, "epochs": args.epochs, "heldout_accuracy": accuracy,
            "train_images": n_train, "heldout_images": n_held, "input": "(batch, 1, 28, 28) luma in [0, 1]",
            "outputs": {"features": FEATURES, "logits": CLASSES},
            "script": "scripts/digits_features.py"}
    path = export(model, Path(args.out), info)
    print(f"held-out accuracy {accuracy:.4f} on {n_held} scans ({n_train} trained on); wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
