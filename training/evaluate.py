"""Independent judges of the bundled latent models.

Digits: an RBF SVM with probability outputs, trained on scikit-learn's training split of the 8×8
digits (never on anything a model generated). Shapes: measurement against the renderer's known
factors — which factor each VAE dimension follows, and which shapes and colours a GAN draws.

    python -m training.evaluate   # scores the bundled digit GAN and VAE, and the shapes pair

(The README's traversal pictures are a view of the app's, redrawn by ``python -m docs.make_pictures``.)
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from sklearn.calibration import CalibratedClassifierCV
from sklearn.svm import SVC

from shared.datasets import COLOUR_BANDS, FACTORS, SHAPES, digits, factor_scores, shapes


@functools.lru_cache(maxsize=1)
def classifier() -> tuple[CalibratedClassifierCV, float, float]:
    """(SVM, held-out accuracy, R = mean top-class probability on real held-out digits)."""
    data = digits(size=8)
    svm = CalibratedClassifierCV(SVC(kernel="rbf", gamma="scale", C=10), ensemble=False)
    svm.fit(_features(data["x_train"]), data["y_train"].numpy())
    test = _features(data["x_test"])
    accuracy = float((svm.predict(test) == data["y_test"].numpy()).mean())
    return svm, accuracy, float(svm.predict_proba(test).max(axis=1).mean())


def _features(images: torch.Tensor) -> np.ndarray:
    """(N, 1, s, s) in [0, 1] → the classifier's 64 features (8×8, 0..16 like load_digits)."""
    if images.shape[-1] != 8:
        images = torch.nn.functional.interpolate(images, size=(8, 8), mode="area")
    return (images.reshape(len(images), 64) * 16).numpy()


def judge(images: torch.Tensor) -> dict:
    """Mean top-class probability, its ratio to R, and which digits appear, for generated images."""
    svm, accuracy, r = classifier()
    probs = svm.predict_proba(_features(images.float()))
    confidence = float(probs.max(axis=1).mean())
    counts = np.bincount(probs.argmax(axis=1), minlength=10)
    return {
        "confidence": confidence,
        "ratio": confidence / r,
        "R": r,
        "accuracy": accuracy,
        "digit_counts": counts.tolist(),
    }


def shapes_report(top: int = 4, path=None) -> list[dict]:
    """For the bundled shapes VAE (or the one saved at ``path``): its `top` most used dimensions
    and the factor each follows."""
    from pathlib import Path

    from shared.latent_models import ConvVAE

    vae = ConvVAE.from_pretrained(path or Path(__file__).resolve().parent.parent / "weights" / "shapes-vae").eval()
    data = shapes(count=3000, seed=1)  # not the training draw (seed 0)
    with torch.no_grad():
        mu, logvar = vae.encode(data["x_train"])
    kl = (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).mean(dim=0)
    scores = factor_scores(mu.numpy(), data["factors"].numpy())
    report = []
    for dim in kl.argsort(descending=True)[:top].tolist():
        order = np.argsort(-scores[dim])
        report.append(
            {
                "dim": dim,
                "kl": round(float(kl[dim]), 3),
                "factor": FACTORS[order[0]],
                "score": round(float(scores[dim, order[0]]), 3),
                "runner_up": FACTORS[order[1]],
                "runner_up_score": round(float(scores[dim, order[1]]), 3),
            }
        )
    return report


def read_shape(image: np.ndarray) -> tuple[int, float, int] | None:
    """(shape, colour, blobs) of the object in a (3, H, W) image in [0, 1], by measurement, or
    None when nothing is drawn; blobs counts separate marks (a rendered shape is 1), and the
    largest is the one read. Shape by compactness, which ignores rotation: the blob's area over the
    circle through its farthest pixel is ≈ 0.86 for a circle, 0.64 for a square, 0.45 for a
    triangle. Colour: the hue of the blob's mean, on the dataset's 0–1 scale (red 0, blue 1)."""
    import colorsys

    from scipy import ndimage

    from shared.datasets import HUES

    mask = image.max(axis=0) > 0.35
    if mask.sum() < 5:
        return None
    labels, count = ndimage.label(mask)
    if count > 1:  # keep the largest blob; the others are stray marks
        mask = labels == 1 + np.argmax(np.bincount(labels[mask])[1:])
    ys, xs = np.nonzero(mask)
    radius = np.sqrt((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2).max() + 0.5
    compactness = mask.sum() / (np.pi * radius**2)
    shape = 2 if compactness < 0.54 else 0 if compactness < 0.77 else 1  # the order of SHAPES
    hue = colorsys.rgb_to_hsv(*image[:, mask].mean(axis=1))[0]
    hue = 0.0 if hue > (1 + HUES) / 2 else hue  # magenta-ish reds wrap round to red
    return shape, min(1.0, hue / HUES), count


def shapes_balance(images: torch.Tensor) -> dict:
    """Share of each shape and each third of the colour range among generated shapes, and how
    many show nothing: a GAN that has collapsed onto a few modes shows it here (the data has a
    third of each), and "one object" is the share of drawings that are a single mark."""

    read = [read_shape(image) for image in images.float().numpy()]
    drawn = [r for r in read if r is not None]
    shapes_ = np.bincount([r[0] for r in drawn], minlength=3) / max(1, len(drawn))
    colours = np.bincount([min(2, int(r[1] * 3)) for r in drawn], minlength=3) / max(1, len(drawn))
    return {
        "empty": round(1 - len(drawn) / len(read), 3),
        "one object": round(float(np.mean([r[2] == 1 for r in drawn])) if drawn else 0.0, 3),
        "shape": {SHAPES[i]: round(float(shapes_[i]), 3) for i in range(3)},
        "colour": {COLOUR_BANDS[i]: round(float(colours[i]), 3) for i in range(3)},
    }


def main() -> None:
    from pathlib import Path

    from shared.latent_models import ConvVAE, Generator

    root = Path(__file__).resolve().parent.parent / "weights"
    torch.manual_seed(0)
    with torch.no_grad():
        gan = Generator.from_pretrained(root / "digits-gan").eval()
        print("GAN", judge(gan(torch.randn(1000, gan.latent_dim))))
        vae = ConvVAE.from_pretrained(root / "digits-vae").eval()
        print("VAE", judge(vae.decode(torch.randn(1000, vae.latent_dim))))
        test = digits()["x_test"]
        mu, _ = vae.encode(test)
        print("VAE reconstruction MSE on held-out digits", float(((vae.decode(mu) - test) ** 2).mean()))
        for row in shapes_report(top=6):
            print("shapes VAE", row)
        gan = Generator.from_pretrained(root / "shapes-gan").eval()
        print("shapes GAN", shapes_balance(gan(torch.randn(1000, gan.latent_dim))))


if __name__ == "__main__":
    main()
