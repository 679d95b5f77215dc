"""Noise features: the numbers the analysis compares and the seed selector learns from.

For a noise `(1, C, h, w)`: overall norm, mean and std; per-channel mean and std;
the share of spectral power at low and at high spatial frequencies (radial
quarters of the 2-D FFT, averaged over channels); and each channel averaged over
a 2x2 grid of quadrants (coarse layout, which is what a diffusion model turns
into composition). All are cheap and need nothing but the noise itself.
"""

from __future__ import annotations

import numpy as np


def _band_shares(noise: np.ndarray) -> tuple[float, float]:
    """Share of FFT power in the lowest and the highest quarter of radial frequency."""
    _, _, h, w = noise.shape
    power = np.abs(np.fft.fft2(noise[0], axes=(-2, -1))) ** 2  # (C, h, w)
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    radius = np.sqrt(fy**2 + fx**2) / np.sqrt(0.5)  # 0 at DC, 1 at the corner
    total = power.sum()
    low = power[:, (radius > 0) & (radius <= 0.25)].sum() / total
    high = power[:, radius > 0.75].sum() / total
    return float(low), float(high)


def noise_features(noise: np.ndarray) -> dict[str, float]:
    """Feature name -> value for one unpacked noise `(1, C, h, w)`."""
    x = np.asarray(noise, dtype=np.float64)
    _, channels, h, w = x.shape
    low, high = _band_shares(x)
    features = {"norm": float(np.linalg.norm(x)), "mean": float(x.mean()), "std": float(x.std()),
                "low_freq_share": low, "high_freq_share": high}
    for c in range(channels):
        features[f"ch{c}_mean"] = float(x[0, c].mean())
        features[f"ch{c}_std"] = float(x[0, c].std())
        for qy in range(2):
            for qx in range(2):
                block = x[0, c, qy * h // 2:(qy + 1) * h // 2, qx * w // 2:(qx + 1) * w // 2]
                features[f"ch{c}_q{qy}{qx}_mean"] = float(block.mean())
    return features


def feature_matrix(noises: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(n, F) features for noises `(n, 1, C, h, w)` or `(n, C, h, w)`, and the feature names."""
    rows = [noise_features(n if n.ndim == 4 else n[None]) for n in noises]
    names = list(rows[0])
    return np.array([[row[name] for name in names] for row in rows]), names
