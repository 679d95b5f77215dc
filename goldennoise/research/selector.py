"""A seed selector: predicts from a seed's noise alone whether it will be golden.

Start simple: standardized noise features into a logistic regression; a small
MLP is tried beside it. The only figures reported are held out: grouped
cross-validation by prompt (no prompt is in both training and test folds), AUC
over the out-of-fold predictions with a bootstrap interval over prompts, and the
same run on labels shuffled within each prompt as a control that must sit at
chance (0.5). Training-set figures are never reported.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from goldennoise.features import feature_matrix

SELECTOR_FILE = "selector.json"


@dataclass
class SeedSelector:
    """Logistic regression on standardized features; JSON-serializable."""

    feature_names: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    noise_shape: list[int]
    held_out_auc: float | None = None

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Probability of golden for each row of `features` (in `feature_names` order)."""
        z = (features - np.array(self.mean)) / np.array(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.array(self.coef) + self.intercept)))

    def score_noises(self, noises: np.ndarray) -> np.ndarray:
        features, names = feature_matrix(noises)
        if names != self.feature_names:
            raise ValueError("This selector was trained on other noise features; retrain it on this model's data.")
        return self.predict(features)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> "SeedSelector":
        return cls(**json.loads(Path(path).read_text()))


def _logistic(X: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000)).fit(X, y)


def _mlp(X: np.ndarray, y: np.ndarray):
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(32,), alpha=1e-2, max_iter=2000,
                                                         random_state=0)).fit(X, y)


MODELS = {"logistic regression": _logistic, "MLP (32 hidden)": _mlp}


def out_of_fold(X: np.ndarray, y: np.ndarray, groups: np.ndarray, fit, folds: int = 5) -> np.ndarray:
    """Out-of-fold probability of golden for every row, folds grouped by prompt."""
    from sklearn.model_selection import GroupKFold

    predictions = np.full(len(y), np.nan)
    for train, test in GroupKFold(n_splits=min(folds, len(set(groups)))).split(X, y, groups):
        if len(set(y[train])) < 2:
            predictions[test] = y[train].mean()
            continue
        predictions[test] = fit(X[train], y[train]).predict_proba(X[test])[:, 1]
    return predictions


def auc_with_interval(y: np.ndarray, scores: np.ndarray, groups: np.ndarray, draws: int = 500,
                      seed: int = 0) -> tuple[float, float, float]:
    """ROC AUC and a 95% bootstrap interval resampling whole prompts."""
    from sklearn.metrics import roc_auc_score

    auc = float(roc_auc_score(y, scores))
    rng = np.random.default_rng(seed)
    unique = np.unique(groups)
    index_of = {g: np.flatnonzero(groups == g) for g in unique}
    values = []
    for _ in range(draws):
        rows = np.concatenate([index_of[g] for g in rng.choice(unique, size=len(unique), replace=True)])
        if len(set(y[rows])) == 2:
            values.append(roc_auc_score(y[rows], scores[rows]))
    low, high = np.percentile(values, [2.5, 97.5])
    return auc, float(low), float(high)


def shuffle_within_groups(y: np.ndarray, groups: np.ndarray, seed: int = 0) -> np.ndarray:
    """Labels permuted inside each prompt: keeps each prompt's golden rate, breaks any noise link."""
    rng = np.random.default_rng(seed)
    shuffled = y.copy()
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        shuffled[rows] = rng.permutation(y[rows])
    return shuffled


def evaluate(X: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 5) -> list[dict]:
    """Held-out AUC (with interval) of each model, on the real labels and on shuffled ones."""
    results = []
    for name, fit in MODELS.items():
        for labels, control in ((y, False), (shuffle_within_groups(y, groups), True)):
            auc, low, high = auc_with_interval(labels, out_of_fold(X, labels, groups, fit, folds), groups)
            results.append({"model": name, "labels": "shuffled within prompt (control)" if control else "real",
                            "held_out_auc": auc, "ci_low": low, "ci_high": high, "folds": folds,
                            "prompts": len(np.unique(groups)), "samples": len(y)})
    return results


def train(X: np.ndarray, y: np.ndarray, names: list[str], noise_shape: list[int],
          held_out_auc: float | None) -> SeedSelector:
    """Fit the logistic-regression selector on all data, for use in the workbench."""
    model = _logistic(X, y)
    scaler, logistic = model[0], model[-1]
    return SeedSelector(feature_names=names, mean=scaler.mean_.tolist(), scale=scaler.scale_.tolist(),
                        coef=logistic.coef_[0].tolist(), intercept=float(logistic.intercept_[0]),
                        noise_shape=noise_shape, held_out_auc=held_out_auc)
