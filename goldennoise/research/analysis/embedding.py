"""Low-dimensional views of the distinct noises: PCA, t-SNE, k-means clusters, optional UMAP.

All of them run on a fixed low-dimensional projection: the standardized noise
features (5 + 6C numbers per noise), reduced by PCA to at most `COMPONENTS`
dimensions. Never the noise tensors: a FLUX noise has 262,144 values and 1,000 of
them would take gigabytes, and i.i.d. Gaussian noise has no structure to show by
construction (any clusters of the raw tensors are random). One point per distinct
noise, not per answer. t-SNE and UMAP are for looking; the cluster table (golden
rate per cluster with a clustered interval) is the number to read. UMAP is an
optional extra (`pip install umap-learn`); its first run spends ~35 s compiling.

Under a pre-filter the PCA and k-means are weighted by each noise's 1/P(shown) (see
`ipw`), so axes and clusters are those of the generated noises, and each cluster's
golden rate is weighted by 1/propensity. The t-SNE / UMAP pictures place the shown
noises as they are (a picture cannot be weighted); their titles say so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from goldennoise.research.analysis.inference import ClusterBootstrap, weighted_mean

COMPONENTS = 10
MAX_POINTS = 3000  # t-SNE / UMAP on a seeded subsample beyond this


def projection(features: np.ndarray, seed: int = 0, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """PCA of standardized features: (coordinates (S, <=COMPONENTS), explained variance ratios).

    With `weights` (a pre-filter's 1/P(shown) per noise): weighted means, SDs and covariance, so the axes are
    those of all generated noises, not of the shown ones."""
    from sklearn.decomposition import PCA

    k = int(min(COMPONENTS, features.shape[1], len(features) - 1))
    if weights is None:
        z = (features - features.mean(0)) / np.where(features.std(0) > 0, features.std(0), 1.0)
        pca = PCA(n_components=k, random_state=seed).fit(z)
        return pca.transform(z), pca.explained_variance_ratio_
    p = np.asarray(weights, dtype=float) / np.sum(weights)
    centred = features - p @ features
    sd = np.sqrt(p @ centred**2)
    z = centred / np.where(sd > 0, sd, 1.0)
    _, values, axes = np.linalg.svd(np.sqrt(p)[:, None] * z, full_matrices=False)
    return z @ axes[:k].T, (values**2 / np.sum(values**2))[:k]


def _subsample(n: int, seed: int) -> np.ndarray:
    if n <= MAX_POINTS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, MAX_POINTS, replace=False))


def tsne(coords: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """2-D t-SNE of the projection: (points, indices of the distinct noises drawn)."""
    from sklearn.manifold import TSNE

    keep = _subsample(len(coords), seed)
    perplexity = float(min(30, max(2, (len(keep) - 1) // 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(coords[keep]), keep


def umap(coords: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """2-D UMAP of the projection; ImportError with the fix when umap-learn is not installed."""
    try:
        import umap as umap_learn
    except ImportError as error:
        raise ImportError("UMAP skipped: umap-learn is not installed (pip install umap-learn).") from error
    keep = _subsample(len(coords), seed)
    neighbors = int(min(15, max(2, len(keep) - 1)))
    return umap_learn.UMAP(n_neighbors=neighbors, random_state=seed, n_jobs=1).fit_transform(coords[keep]), keep


def clusters(coords: np.ndarray, seeds: np.ndarray, rows: pd.DataFrame, boot: ClusterBootstrap,
             k: int = 6, seed: int = 0, weights: np.ndarray | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """k-means on the projection of distinct noises; per cluster: noises, answers, golden rate and interval.

    `weights` (per noise, 1/P(shown) under a pre-filter) weight the k-means fit; the rate is always weighted by
    the rows' 1/propensity; the counts are of the shown noises and answers."""
    from sklearn.cluster import KMeans

    k = int(min(k, max(2, len(coords) // 10)))
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(coords, sample_weight=weights)
    cluster_of = pd.Series(labels, index=seeds)
    row_cluster = cluster_of.reindex(rows["seed"].to_numpy()).to_numpy()
    y, w = rows["golden"].to_numpy(float), rows["weight"].to_numpy(float)
    out = []
    for c in range(k):
        inside = (row_cluster == c).astype(float)
        low, high = boot.interval(lambda m: weighted_mean(y, m * inside) if (m * inside).sum() else np.nan, base=w)
        out.append({"cluster": c, "distinct_noises": int((labels == c).sum()), "answers": int(inside.sum()),
                    "golden_rate": weighted_mean(y, w * inside) if inside.any() else np.nan,
                    "ci_low": low, "ci_high": high})
    return labels, pd.DataFrame(out)
