"""k-NN density estimation and high-density points (module paths of the original kept)."""

from __future__ import annotations

from ssddbc.density.density_estimation import (
    analyze_knn_average_distances,
    compute_density,
    compute_exponential_density,
    compute_mean_density,
    compute_median_density,
    compute_normalized_density,
    compute_normalized_inverse_density,
    compute_relative_density,
    compute_simple_density,
    identify_high_density_points,
)

__all__ = [
    "analyze_knn_average_distances",
    "compute_density",
    "compute_exponential_density",
    "compute_mean_density",
    "compute_median_density",
    "compute_normalized_density",
    "compute_normalized_inverse_density",
    "compute_relative_density",
    "compute_simple_density",
    "identify_high_density_points",
]
