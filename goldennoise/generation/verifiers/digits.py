"""The sandbox's verifier: how sure a digit classifier is that an image shows the digit its prompt asks for.

A multinomial logistic regression (scikit-learn, C = 1) on the real digits' train
split, scoring log p(requested digit | image) on the image box-averaged back to 8x8
(`sandbox.data.to_grid`). It is a different model from the sandbox's judge (an RBF
SVC) but learns from the same digits, so it is an automatic verifier that really
does agree with the judge's truth, imperfectly: the one verifier whose agreement
with people means something on a CPU. It scores the digits model's prompts only
("a handwritten 7", ...; anything else is refused, naming the prompt). No weights
to download: it is fitted at load (well under a second), deterministically.
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import torch

from goldennoise.generation.verifiers.base import Verifier

VERSION = "1"
DEFINITION = ("log p(the prompt's digit) by a logistic regression on scikit-learn's digits (the sandbox's train "
              "split), on the image box-averaged to 8x8")


class Digits(Verifier):
    name = "digits"
    version = VERSION
    definition = DEFINITION
    batch_size = 256

    def __init__(self, model, revision: str, device: str, dtype: torch.dtype):
        self.model, self.revision, self.device, self.dtype = model, revision, device, dtype
        self.model_id = "goldennoise/digits-logistic"

    def pixels(self, images) -> torch.Tensor:
        from goldennoise.sandbox import data  # lazy: scikit-learn and the sandbox only where this verifier runs

        return torch.as_tensor(data.to_grid(images))

    def forward(self, pixels: torch.Tensor, prompt: str) -> torch.Tensor:
        from goldennoise.sandbox import prompts  # lazy: as above

        digit = prompts.digit_of(prompt)
        log_p = self.model.predict_log_proba(pixels.numpy().astype(np.float64))
        return torch.as_tensor(log_p[:, list(self.model.classes_).index(digit)], dtype=torch.float32)


def load(source: str | None = None, device: str = "cpu", dtype: torch.dtype = torch.float32,
         model_id: str | None = None) -> Digits:
    """Fit the classifier (`source` is not used: there are no weights to load)."""
    import sklearn
    from sklearn.linear_model import LogisticRegression

    from goldennoise.sandbox import data  # lazy: as above

    values, labels = data.real_digits()
    train, _ = data.split()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on unscaled 0..16 inputs; max_iter is ample
        model = LogisticRegression(C=1.0, max_iter=5000).fit(values[train] / data.INK, labels[train])
    model.coef_ /= data.INK  # so it takes the 0..16 values of `to_grid` as they are
    digest = hashlib.sha256(np.ascontiguousarray(model.coef_).tobytes()).hexdigest()[:16]
    return Digits(model, f"sklearn-{sklearn.__version__}:{digest}", "cpu", torch.float64)
