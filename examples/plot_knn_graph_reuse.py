"""
One neighbour search, every k
=============================

knncache searches once at the largest ``k`` and serves every smaller ``k`` as a prefix of
that graph: rows are sorted by (distance, index), so the first ``k`` columns of the graph at
``k_max`` are exactly the graph at ``k``. A second ``ensure`` on the same features is a
cache hit.
"""

import matplotlib.pyplot as plt
import numpy as np

from knncache import EphemeralStore, compute_knn
from ssddbc.data import load_digits_superclass

features = load_digits_superclass("digits_low").features

with EphemeralStore() as store:  # a private temporary store, removed on exit
    ref = store.ensure(features, k=20)  # one exact search
    again = store.ensure(features, k=10)  # a hit: served from the k=20 entry
    print("same entry:", again.fingerprint == ref.fingerprint)

    graphs = {k: ref.load(k) for k in (3, 5, 10, 20)}  # read-only memory maps

    # The prefix property, checked against a fresh search at k=5.
    fresh = compute_knn(features, 5)
    assert np.array_equal(graphs[5].neighbors, fresh.neighbors)

    # %%
    # The distance to the k-th neighbour is what the densities are built from: the larger
    # ``k``, the smoother the density estimate.

    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for k, graph in graphs.items():
        ax.hist(np.asarray(graph.distances[:, -1]), bins=40, histtype="step", label=f"k={k}")
    ax.set_xlabel("distance to the k-th neighbour")
    ax.set_ylabel("samples")
    ax.legend()
    ax.set_title("digits_low: one search at k=20, loaded at four k")
    plt.show()
