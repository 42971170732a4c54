"""
Pseudo-labels in a training loop
================================

The research loop is features → grid search → pseudo-labels → continue training. This
example runs the search on the digits demo's ``digits_low`` superclass, saves the selected
configuration's pseudo-labels in the format a batch run writes
(``<run>/<superclass>/pseudo_labels.npz``), loads them back with plain ``np.load`` and
"trains" on them: a nearest-centroid classifier fit on the core points' pseudo-labels,
weighted by density, then used to label every sample. A real loop would put a network's
loss where the classifier is fit.
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA

from ssddbc.data import load_digits_superclass
from ssddbc.evaluation import split_cluster_acc_v2
from ssddbc.grid_search.api import run_clustering_search_on_features

data = load_digits_superclass("digits_low")
result = run_clustering_search_on_features(
    data.features,
    data.targets,
    data.known_mask,
    data.labeled_mask,
    k_range=range(4, 13, 4),
    density_range=range(40, 91, 25),
    max_workers=1,
    eval_mask=data.test_mask,
)
print(f"selected {result.best_params}: All {result.all_acc:.3f} on the test split (oracle)")
print(f"cluster -> class {result.cluster_to_class}, novel clusters {result.novel_clusters}")

# %%
# Save and load the pseudo-labels. ``indices`` says which dataset row each label belongs
# to; here, the digits dataset's own indices.

folder = Path(tempfile.mkdtemp())
path = result.save_pseudo_labels(folder / "pseudo_labels.npz", indices=data.indices)
with np.load(path) as saved:  # no pickles: allow_pickle stays False
    indices, labels = saved["indices"], saved["labels"]
    core, densities = saved["core_mask"], saved["densities"]

# %%
# One training step: class centroids from the core points, each weighted by its density
# rank (denser points are more trustworthy anchors), then every sample to its nearest
# centroid. The labelled samples keep their own class.

row_of = {int(i): r for r, i in enumerate(data.indices)}
rows = np.array([row_of[int(i)] for i in indices])
x = data.features[rows]
rank = np.argsort(np.argsort(densities)) / len(densities)
classes = np.unique(labels)
centroids = np.stack(
    [
        np.average(x[core & (labels == c)], axis=0, weights=rank[core & (labels == c)] + 1e-3)
        for c in classes
    ]
)
nearest = classes[np.argmin(((x[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)]
trained = np.where(data.labeled_mask[rows], data.targets[rows], nearest)

# The accuracies of the labels, not of the clusters: clusters that share a class count as
# one here, so they may differ from the search's (cluster) accuracy above.
test = data.test_mask[rows]
for name, pred in (("pseudo-labels", labels), ("nearest centroid", trained)):
    all_acc, old, new = split_cluster_acc_v2(
        data.targets[rows][test], pred[test], data.known_mask[rows][test]
    )
    print(f"{name:>16}: All {all_acc:.3f}, Old {old:.3f}, New {new:.3f} on the test split")

# %%
# The pseudo-labels (core points large) and the classifier trained on them, in two
# dimensions (PCA of the 64-pixel features).

xy = PCA(n_components=2, random_state=0).fit_transform(x)
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True, sharey=True, layout="constrained")
axes[0].scatter(xy[~core, 0], xy[~core, 1], c=labels[~core], s=6, cmap="tab10", vmax=9)
axes[0].scatter(
    xy[core, 0],
    xy[core, 1],
    c=labels[core],
    s=18,
    cmap="tab10",
    vmax=9,
    edgecolors="black",
    linewidths=0.3,
)
axes[0].set_title(f"pseudo-labels ({len(result.novel_clusters)} novel cluster(s))")
axes[1].scatter(xy[:, 0], xy[:, 1], c=trained, s=6, cmap="tab10", vmax=9)
axes[1].set_title("nearest centroid fit on the core points")
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()
