"""An independent judge of generated digits: an RBF SVM with probability outputs, trained on
scikit-learn's training split of the 8×8 digits (never on anything a model generated).

    python -m training.evaluate            # scores the bundled digit GAN and VAE
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from sklearn.calibration import CalibratedClassifierCV
from sklearn.svm import SVC

from training.datasets import digits


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


if __name__ == "__main__":
    main()
