"""
Densities, core points and clusters
===================================

Fit :class:`ssddbc.SSDDBC` on the digits demo data at the parameters the grid search
selects for ``digits_low`` (``k=12``, density percentile 40) and draw the result in two
dimensions: the density of every sample, the core points that seed the clusters, and the
final clusters next to the true classes.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA

import ssddbc
from ssddbc.data import load_digits_superclass

data = load_digits_superclass("digits_low")
model = ssddbc.SSDDBC(k=12, density_percentile=40)
labels = model.fit_predict(
    data.features, data.targets, known_mask=data.known_mask, labeled_mask=data.labeled_mask
)
print(
    f"{model.n_clusters_} clusters, {model.core_sample_indices_.size} core points,",
    f"unknown (no labelled member): {model.unknown_clusters_.tolist()}",
)

# %%
# A two-dimensional view (PCA) of the 64-pixel features.

xy = PCA(n_components=2, random_state=0).fit_transform(data.features)
core = np.zeros(len(labels), dtype=bool)
core[model.core_sample_indices_] = True

fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharex=True, sharey=True, layout="constrained")
dens = axes[0].scatter(xy[:, 0], xy[:, 1], c=np.log(model.densities_), s=8, cmap="magma")
fig.colorbar(dens, ax=axes[0], label="log density")
axes[0].set_title("k-NN density")
axes[1].scatter(xy[~core, 0], xy[~core, 1], c="lightgrey", s=6)
axes[1].scatter(xy[core, 0], xy[core, 1], c=labels[core], s=10, cmap="tab10", vmax=9)
axes[1].set_title("core points, by cluster")
axes[2].scatter(xy[:, 0], xy[:, 1], c=labels, s=8, cmap="tab10", vmax=9)
axes[2].set_title(f"SS-DDBC clusters ({model.n_clusters_})")
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()
