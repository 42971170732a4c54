"""
Grid search on the digits demo data
===================================

Search SS-DDBC's ``k`` and density percentile on one superclass of the built-in digits
data (``digits_low``: digits 0-4, three known and two novel) and draw the label-only
score next to the accuracy it is meant to track.

The score uses only the labelled samples; the accuracy uses ground truth and plays no part
in the choice. ``ssddbc-search --demo`` draws these and more panels per superclass.
"""

import matplotlib.pyplot as plt
import numpy as np

from ssddbc.data import load_digits_superclass
from ssddbc.grid_search.api import run_clustering_search_on_features

data = load_digits_superclass("digits_low")
k_values = range(3, 21)
percentiles = range(40, 95, 5)

result = run_clustering_search_on_features(
    data.features,
    data.targets,
    data.known_mask,
    data.labeled_mask,
    k_range=k_values,
    density_range=percentiles,
    max_workers=1,  # serial: no worker processes for a search this small
    return_all=True,
)
print("selected:", result.best_params, f"score {result.score:.4f}")

# %%
# Each configuration's metrics are in ``results_grid``, keyed by ``(k, percentile)``.

grid = result.results_grid
score = np.array([[grid[k, p]["score"] for k in k_values] for p in percentiles])
accuracy = np.array([[grid[k, p]["all_acc"] for k in k_values] for p in percentiles])
best = (
    list(k_values).index(result.best_params["k"]),
    list(percentiles).index(result.best_params["density_percentile"]),
)

fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True, layout="constrained")
for ax, values, title in zip(
    axes, (score, accuracy), ("label-only score", "All accuracy (ground truth)"), strict=True
):
    image = ax.imshow(values, origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(k_values)), list(k_values))
    ax.set_yticks(range(len(percentiles)), list(percentiles))
    ax.set_xlabel("k")
    ax.set_title(title)
    ax.plot(*best, marker="s", markersize=12, fillstyle="none", color="red", markeredgewidth=2)
    fig.colorbar(image, ax=ax)
axes[0].set_ylabel("density percentile")
fig.suptitle("digits_low: red box = the label-only choice")
plt.show()
