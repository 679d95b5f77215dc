"""Noise features: the numbers the analysis compares and the seed selector learns from.

For a noise `(1, C, h, w)`: overall norm, mean and std; per-channel mean and std;
the share of spectral power at low and at high spatial frequencies (radial
quarters of the 2-D FFT, summed over channels); and each channel averaged over
a 2x2 grid of quadrants (coarse layout, which is what a diffusion model turns
into composition). That is 5 + 6C numbers (101 for FLUX.1's 16 channels).

They are cheap (a real FFT in float32, ~3 ms for 1x16x128x128) and need nothing
but one noise, so a table of them is built one noise at a time (`feature_rows`)
and memory stays bounded whatever the number of noises. Every analysis that goes
beyond single features (t-SNE, k-means, the selector) works on these vectors,
never on the noise tensors themselves.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def _band_shares(x: np.ndarray) -> tuple[float, float]:
    """Share of FFT power in the lowest and the highest quarter of radial frequency, for `x` (C, h, w)."""
    _, h, w = x.shape
    spectrum = np.fft.rfft2(x.astype(np.float32), axes=(-2, -1))  # (C, h, w//2+1): half the work of fft2
    power = (spectrum.real**2 + spectrum.imag**2).sum(0, dtype=np.float64)
    # Columns 1..w/2-1 of the real FFT stand for two columns of the full one.
    weight = np.full(power.shape[1], 2.0)
    weight[0] = 1.0
    if w % 2 == 0:
        weight[-1] = 1.0
    power = power * weight
    radius = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None, :] ** 2) / np.sqrt(0.5)
    total = power.sum()
    return float(power[(radius > 0) & (radius <= 0.25)].sum() / total), float(power[radius > 0.75].sum() / total)


def _quadrant_means(x: np.ndarray) -> np.ndarray:
    """(C, 2, 2) means over a 2x2 grid (an odd last row/column is left out, as h // 2 splits it)."""
    c, h, w = x.shape
    hh, hw = h // 2, w // 2
    return x[:, :2 * hh, :2 * hw].reshape(c, 2, hh, 2, hw).mean((2, 4))


def noise_features(noise: np.ndarray) -> dict[str, float]:
    """Feature name -> value for one unpacked noise `(1, C, h, w)`."""
    x = np.asarray(noise, dtype=np.float64)[0]  # (C, h, w)
    channels = x.shape[0]
    low, high = _band_shares(x)
    features = {"norm": float(np.sqrt((x * x).sum())), "mean": float(x.mean()), "std": float(x.std()),
                "low_freq_share": low, "high_freq_share": high}
    means, stds, quadrants = x.mean((1, 2)), x.std((1, 2)), _quadrant_means(x)
    for c in range(channels):
        features[f"ch{c}_mean"] = float(means[c])
        features[f"ch{c}_std"] = float(stds[c])
        for qy in range(2):
            for qx in range(2):
                features[f"ch{c}_q{qy}{qx}_mean"] = float(quadrants[c, qy, qx])
    return features


def feature_rows(noises: Iterable[np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """(n, F) features of noises given one at a time (each `(1, C, h, w)`), and the feature names.

    Only one noise is held at a time: pass a generator to keep memory bounded.
    """
    rows, names = [], None
    for noise in noises:
        features = noise_features(noise)
        names = names or list(features)
        rows.append([features[name] for name in names])
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(names or [])), names or []


def feature_matrix(noises: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(n, F) features for stacked noises `(n, 1, C, h, w)` or `(n, C, h, w)`, and the feature names."""
    return feature_rows(n if n.ndim == 4 else n[None] for n in noises)
