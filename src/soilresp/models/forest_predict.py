"""Fast point prediction of the forest families (``rf``, ``qrf`` mean) over packed trees.

scikit-learn's forest ``predict`` walks one tree at a time over all rows, with a branch per
node (about 0.3 M rows/s for 50 trees on one core here). For the product and the Monte Carlo
(150 M land pixels x 15 years at 1 km) the same fitted forest is instead *packed* into flat
node arrays and walked by a numba kernel (:func:`_walk`) that

* visits every tree branch-free: the two children of a node are stored side by side, so the
  next node is ``child[node] + (x > threshold)``; a leaf points at itself with threshold
  +inf, and each tree is walked exactly ``max_depth`` steps;
* walks a block of 64 rows through one tree step by step (64 independent load chains
  instead of one mispredicted branch per node), with unsigned indices (no wrap-around
  checks);
* loops trees outer over a chunk of 2048 rows (each tree's ~30 kB of nodes stays in the L1
  cache while the chunk's 32 blocks walk it; rows outer streamed the whole forest, several
  MB for a deep forest, from L3 for every block), and runs chunks in parallel (``prange``)
  over the cores. Per row the tree sums still run in the estimators' order.

The pack is derived from the fitted estimator (``estimator.estimators_[i].tree_``, and for a
quantile forest its stored training leaves); it is built when a :class:`BiomeModel` is first
asked to predict, never stored in or read from a file.

Exactness. scikit-learn casts X to float32 and tests ``x <= threshold`` against float64
thresholds. A float64 threshold t is replaced by the largest float32 ``t32 <= t``, for which
``x <= t32`` and ``x <= t`` agree for every float32 x: the leaves reached are the same. The
leaf values are float64 and summed over trees in the estimators' order, so
:class:`~sklearn.ensemble.RandomForestRegressor` outputs are reproduced to the last bit or
within float64 rounding; ``tests/test_forest_predict.py`` checks it.

* ``rf``: mean over trees of the leaf value (``tree_.value``), as scikit-learn.
* ``qrf`` with ``quantiles="mean"`` (quantile-forest, ``max_samples_leaf=None``,
  ``aggregate_leaves_first=True``): the mean of all training targets stored in the row's
  leaves of every tree pooled together = sum over trees of the leaf's target sum / sum over
  trees of its count (Meinshausen 2006, the conditional mean of the pooled leaf sample).

Inputs must be finite (``BiomeModel.predict`` passes finite rows only). Quantiles of the
quantile forest keep quantile-forest's own code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

_BLOCK = 64  # rows interleaved per tree walk (independent load chains)
_CHUNK = 2048  # rows per parallel task


@dataclass(frozen=True)
class PackedForest:
    """A forest as flat arrays (all trees concatenated, node ids global).

    ``feature`` uint32, ``threshold`` float32 (rounded down from float64), ``child`` uint32
    (left child; the right child is ``child + 1``; a leaf is its own child), ``num`` and
    ``den`` float64 per node (leaf target sum and count, or value and 1), ``root`` int32 and
    ``depth`` int32 per tree, ``n_features``.
    """

    feature: np.ndarray
    threshold: np.ndarray
    child: np.ndarray
    num: np.ndarray
    den: np.ndarray
    root: np.ndarray  # uint32
    depth: np.ndarray
    n_features: int

    def predict(self, X) -> np.ndarray:
        """Point prediction (n,) float64 for finite rows ``X`` (n, n_features)."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"packed forest reads {self.n_features} columns, got shape {X.shape}")
        return _walk(X, self.feature, self.threshold, self.child, self.num, self.den, self.root, self.depth)


def _round_down_f32(t: np.ndarray) -> np.ndarray:
    t32 = t.astype(np.float32)
    up = t32.astype(np.float64) > t
    t32[up] = np.nextafter(t32[up], np.float32(-np.inf))
    return t32


def _pack_tree(tree, num_leaf: np.ndarray, den_leaf: np.ndarray, offset: int):
    """One sklearn ``Tree`` renumbered breadth-first so that siblings are adjacent."""
    left, right = tree.children_left, tree.children_right
    order = [0]
    new = np.full(tree.node_count, -1, dtype=np.int64)
    new[0] = 0
    child = np.zeros(tree.node_count, dtype=np.int64)
    i = 0
    while i < len(order):  # BFS: append both children of each internal node together
        n = order[i]
        if left[n] >= 0:
            child[n] = len(order)
            new[left[n]], new[right[n]] = len(order), len(order) + 1
            order.extend((left[n], right[n]))
        else:
            child[n] = new[n]
        i += 1
    order = np.asarray(order)
    leaf = left[order] < 0
    feat = np.where(leaf, 0, tree.feature[order]).astype(np.uint32)
    thr = np.where(leaf, np.inf, tree.threshold[order])
    return (feat, _round_down_f32(thr), (child[order] + offset).astype(np.uint32),
            np.where(leaf, num_leaf[order], 0.0), np.where(leaf, den_leaf[order], 0.0), int(tree.max_depth))


def _leaf_stats(estimator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per tree, per node (sum, count) of the quantity whose ratio is the prediction."""
    trees = [e.tree_ for e in estimator.estimators_]
    if hasattr(estimator, "forest_"):  # quantile-forest: pooled training targets of the leaves
        if getattr(estimator, "max_samples_leaf", None) is not None:
            raise ValueError("packed quantile forest needs max_samples_leaf=None (all leaf samples kept)")
        if getattr(estimator, "monotonic_cst", None) is not None:
            raise ValueError("packed quantile forest does not support monotonic constraints")
        ytl = np.asarray(estimator.forest_.y_train_leaves)  # (trees, nodes, outputs, slots), 1-based
        ytr = np.asarray(estimator.forest_.y_train)  # (outputs, n_train)
        if ytr.shape[0] != 1:
            raise ValueError("packed forest supports a single output")
        out = []
        for t, tree in enumerate(trees):
            idx = ytl[t, : tree.node_count, 0, :]
            valid = idx > 0
            vals = np.where(valid, ytr[0][np.maximum(idx - 1, 0)], 0.0)
            out.append((vals.sum(axis=1), valid.sum(axis=1).astype(np.float64)))
        return out
    if trees and trees[0].n_outputs != 1:
        raise ValueError("packed forest supports a single output")
    return [(tree.value[:, 0, 0].astype(np.float64), np.ones(tree.node_count)) for tree in trees]


def pack_forest(estimator) -> PackedForest:
    """Pack a fitted ``RandomForestRegressor`` or quantile-forest ``RandomForestQuantileRegressor``
    (point prediction = mean) into a :class:`PackedForest`."""
    stats = _leaf_stats(estimator)
    parts, offset, roots = [], 0, []
    for e, (num, den) in zip(estimator.estimators_, stats):
        roots.append(offset)
        parts.append(_pack_tree(e.tree_, num, den, offset))
        offset += e.tree_.node_count
    cat = [np.concatenate([p[k] for p in parts]) for k in range(5)]
    return PackedForest(cat[0], cat[1], cat[2], cat[3], cat[4], np.asarray(roots, dtype=np.uint32),
                        np.asarray([p[5] for p in parts], dtype=np.int32), int(estimator.n_features_in_))


def is_packable(estimator) -> bool:
    """True for the forest families whose point prediction :func:`pack_forest` reproduces."""
    from sklearn.ensemble._forest import ForestRegressor

    if not isinstance(estimator, ForestRegressor) or not hasattr(estimator, "estimators_"):
        return False  # quantile-forest's forests are ForestRegressors too
    if hasattr(estimator, "forest_"):
        dq = getattr(estimator, "default_quantiles", None)
        return dq == "mean" and getattr(estimator, "max_samples_leaf", 1) is None \
            and getattr(estimator, "monotonic_cst", None) is None
    return getattr(estimator, "n_outputs_", 1) == 1


@njit(parallel=True, cache=True, boundscheck=False, nogil=True)
def _walk(X, feature, threshold, child, num, den, root, depth):  # pragma: no cover - numba
    n, p = X.shape
    Xf = X.ravel()
    out = np.empty(n, dtype=np.float64)
    nchunks = (n + _CHUNK - 1) // _CHUNK
    for c in prange(nchunks):
        c0 = c * _CHUNK
        m = min(n, c0 + _CHUNK) - c0
        nb = (m + _BLOCK - 1) // _BLOCK
        xoff = np.empty(nb * _BLOCK, dtype=np.uint64)
        for r in range(nb * _BLOCK):  # a short last block repeats the chunk's last row
            xoff[r] = np.uint64((c0 + min(r, m - 1)) * p)
        sn = np.zeros(nb * _BLOCK, dtype=np.float64)
        sd = np.zeros(nb * _BLOCK, dtype=np.float64)
        node = np.empty(_BLOCK, dtype=np.uint32)
        for t in range(root.size):  # trees outer: one tree's nodes stay in L1 over the chunk
            rt = root[t]
            for o in range(0, nb * _BLOCK, _BLOCK):
                node[:] = rt
                for _ in range(depth[t]):
                    for r in range(_BLOCK):
                        k = node[r]
                        node[r] = child[k] + np.uint32(Xf[xoff[o + r] + feature[k]] > threshold[k])
                for r in range(_BLOCK):
                    sn[o + r] += num[node[r]]
                    sd[o + r] += den[node[r]]
        for r in range(m):
            out[c0 + r] = sn[r] / sd[r]
    return out
