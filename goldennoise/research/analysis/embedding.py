"""Low-dimensional views of noises (and image CLIP embeddings): t-SNE, UMAP, k-means clusters.

Noises are flattened and standardized per dimension first. t-SNE and UMAP are
for looking, not for conclusions; the cluster table gives each cluster's golden
rate with a Wilson interval, which is the number to read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from goldennoise.analysis.stats import wilson


def _standardized(vectors: np.ndarray) -> np.ndarray:
    flat = vectors.reshape(len(vectors), -1).astype(np.float64)
    return (flat - flat.mean(0)) / (flat.std(0) + 1e-8)


def tsne(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(2, (len(vectors) - 1) // 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(_standardized(vectors))


def umap(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    import umap as umap_learn

    neighbors = int(min(15, max(2, len(vectors) - 1)))
    return umap_learn.UMAP(n_neighbors=neighbors, random_state=seed, n_jobs=1).fit_transform(_standardized(vectors))


def clusters(vectors: np.ndarray, golden: np.ndarray, k: int = 6, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """k-means labels and each cluster's size and golden rate."""
    from sklearn.cluster import KMeans

    k = int(min(k, max(2, len(vectors) // 10)))
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(_standardized(vectors))
    rows = []
    for cluster in range(k):
        members = golden[labels == cluster]
        low, high = wilson(int(members.sum()), len(members))
        rows.append({"cluster": cluster, "seeds": len(members), "golden": int(members.sum()),
                     "golden_rate": members.mean() if len(members) else float("nan"), "ci_low": low, "ci_high": high})
    return labels, pd.DataFrame(rows)


def clip_image_embeddings(image_paths: list, clip_name: str) -> np.ndarray:
    """Image embeddings of saved images with the CLIP model that scored them."""
    import torch
    from PIL import Image

    from goldennoise.scoring import load_clip

    scorer = load_clip(clip_name)
    vectors = []
    with torch.no_grad():
        for start in range(0, len(image_paths), 32):
            images = [Image.open(p).convert("RGB") for p in image_paths[start:start + 32]]
            inputs = scorer.processor(images=images, return_tensors="pt").to(scorer.device)
            vectors.append(scorer.model.get_image_features(**inputs).pooler_output.float().cpu().numpy())
    return np.concatenate(vectors)
