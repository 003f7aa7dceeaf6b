"""Fast point prediction of the forest families (``rf``, ``qrf`` mean) over packed trees.

scikit-learn's forest ``predict`` walks one tree at a time over all rows, with a branch per
node (about 0.1-0.3 M rows/s for 50 trees on one core here). For the product and the Monte
Carlo (150 M land pixels x 15 years at 1 km) the same fitted forest is instead *packed* into
flat node arrays and walked by a numba kernel (:func:`_walk`) that

* compares integers: a float32 value and a float32 threshold are mapped to int32 keys
  (:func:`_key32`, the IEEE-754 total-order trick: flip the 31 low bits of negatives) whose
  signed order is the floats' order, so ``x > t`` is ``key(x) > key(t)``;
* visits every tree branch-free: the two children of a node are stored side by side, so the
  next node is ``child[node] + (key(x) > key(t))``; a node is one int32 key and one int32
  ``child << shift | feature``; a leaf points at itself with key ``INT32_MAX``, and each tree
  is walked exactly ``max_depth`` steps;
* walks a block of 64 rows through one tree level by level with 32-bit indices and no
  aliasing between the kernel's arrays, so LLVM vectorises the block into AVX2/AVX-512 gathers
  (8 rows per instruction: the node's key, its child/feature word and the row's value);
* loops trees outer over a chunk of 2048 rows (a tree's nodes stay in L1 while the chunk's
  32 blocks walk it) and hands the chunks to the cores dynamically (``prange``, chunk size 1,
  so a core slowed by other processes does not hold up the other). Per row the tree sums run
  in the estimators' order.

The pack is derived from the fitted estimator (``estimator.estimators_[i].tree_``, and for a
quantile forest its stored training leaves); it is built when a :class:`BiomeModel` is first
asked to predict, never stored in or read from a file.

Exactness. scikit-learn casts X to float32 and tests ``x <= threshold`` against float64
thresholds. A float64 threshold t is replaced by the largest float32 ``t32 <= t``, for which
``x <= t32`` and ``x <= t`` agree for every float32 x: the leaves reached are the same (a
threshold of -0.0 is stored as +0.0, equal for ``<=``, so that -0.0 and +0.0 inputs, whose
keys differ, fall on the same side). The leaf values are float64 and summed over trees in the
estimators' order, then divided by the tree count, so
:class:`~sklearn.ensemble.RandomForestRegressor` outputs are reproduced to the last bit;
``tests/test_forest_predict.py`` checks it, at thresholds and their float32 neighbours too.

* ``rf``: mean over trees of the leaf value (``tree_.value``), as scikit-learn.
* ``qrf`` with ``quantiles="mean"`` (quantile-forest, ``max_samples_leaf=None``,
  ``aggregate_leaves_first=True``): the mean of all training targets stored in the row's
  leaves of every tree pooled together = sum over trees of the leaf's target sum / sum over
  trees of its count (Meinshausen 2006, the conditional mean of the pooled leaf sample).

Inputs may be +-inf (compared as scikit-learn does) but not NaN (scikit-learn routes a NaN by
each node's ``missing_go_to_left``; ``BiomeModel.predict`` passes complete rows only and
gives NaN for the others): :meth:`PackedForest.predict` raises on NaN. Quantiles of the
quantile forest keep quantile-forest's own code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange, set_parallel_chunksize

_BLOCK = 64  # rows walked level by level through a tree (8 gathers of 8 lanes)
_CHUNK = 2048  # rows per parallel task (a multiple of _BLOCK)
_LEAF_KEY = np.iinfo(np.int32).max  # no key is greater: a leaf's row stays on the leaf


@dataclass(frozen=True)
class PackedForest:
    """A forest as flat arrays (all trees concatenated, node ids global).

    ``key`` int32 (:func:`_key32` of the float32 threshold rounded down from float64;
    ``INT32_MAX`` at leaves), ``link`` int32 (``child << shift | feature``: the left child,
    the right child is ``child + 1``; a leaf is its own child), ``num`` and ``den`` float64
    per node (leaf target sum and count, or value and 1), ``root`` int32 and ``depth`` int32
    per tree, ``n_features`` and ``shift`` (bits of ``feature``; rows are read from a key
    array with ``2**shift`` columns).
    """

    key: np.ndarray
    link: np.ndarray
    num: np.ndarray
    den: np.ndarray
    root: np.ndarray
    depth: np.ndarray
    n_features: int
    shift: int

    @property
    def n_nodes(self) -> int:
        return int(self.key.size)

    def predict(self, X) -> np.ndarray:
        """Point prediction (n,) float64 for rows ``X`` (n, n_features) without NaN."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"packed forest reads {self.n_features} columns, got shape {X.shape}")
        if np.isnan(X).any():
            raise ValueError(f"packed forest got NaN in row {int(np.argmax(np.isnan(X).any(axis=1)))}; "
                             "pass complete rows (BiomeModel.predict does)")
        Xk = np.zeros((X.shape[0], 1 << self.shift), dtype=np.int32)
        Xk[:, : self.n_features] = _key32(X)
        old = set_parallel_chunksize(1)  # dynamic: chunks go to whichever core is free
        try:
            return _walk(Xk, self.key, self.link, self.shift, self.num, self.den, self.root, self.depth)
        finally:
            set_parallel_chunksize(old)


def _key32(a) -> np.ndarray:
    """int32 keys of float32 values (float64 cast to float32 first, as scikit-learn does) whose
    signed order is the float order (-0.0 < +0.0; NaN above +inf)."""
    i = np.ascontiguousarray(a, dtype=np.float32).view(np.int32)
    return i ^ ((i >> 31) & np.int32(0x7FFFFFFF))


def _round_down_f32(t: np.ndarray) -> np.ndarray:
    """The largest float32 <= each float64 ``t`` (-0.0 as +0.0)."""
    t32 = t.astype(np.float32)
    up = t32.astype(np.float64) > t
    t32[up] = np.nextafter(t32[up], np.float32(-np.inf))
    t32[t32 == 0] = 0.0  # -0.0 -> +0.0: the same test for floats, one key for both zeros
    return t32


def _pack_tree(tree, num_leaf: np.ndarray, den_leaf: np.ndarray, offset: int, shift: int):
    """One sklearn ``Tree`` renumbered breadth-first so that siblings are adjacent: (key, link,
    num, den, max depth) with node ids offset by ``offset``."""
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
    feat = np.where(leaf, 0, tree.feature[order]).astype(np.int64)
    key = np.where(leaf, _LEAF_KEY, _key32(_round_down_f32(np.where(leaf, 0.0, tree.threshold[order]))))
    link = ((child[order] + offset) << shift) | feat
    return (key.astype(np.int32), link.astype(np.int32), np.where(leaf, num_leaf[order], 0.0),
            np.where(leaf, den_leaf[order], 0.0), int(tree.max_depth))


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
    p = int(estimator.n_features_in_)
    shift = max(1, (p - 1).bit_length())
    total = sum(e.tree_.node_count for e in estimator.estimators_)
    if total >= 1 << (31 - shift):
        raise ValueError(f"forest of {total} nodes with {p} features is too large to pack in 32-bit links")
    parts, offset, roots = [], 0, []
    for e, (num, den) in zip(estimator.estimators_, stats):
        roots.append(offset)
        parts.append(_pack_tree(e.tree_, num, den, offset, shift))
        offset += e.tree_.node_count
    cat = [np.concatenate([q[k] for q in parts]) for k in range(4)]
    return PackedForest(cat[0], cat[1], cat[2], cat[3], np.asarray(roots, dtype=np.int32),
                        np.asarray([q[4] for q in parts], dtype=np.int32), p, shift)


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
def _walk(Xk, key, link, shift, num, den, root, depth):  # pragma: no cover - numba
    """Sum over trees of the leaf's ``num`` / sum of its ``den`` for each row of the key array
    ``Xk`` (n, 2**shift) int32. Arrays in, array out; the inner row loop is written so that
    LLVM vectorises it (int32 indices, masked non-negative, no store into a read array)."""
    n = Xk.shape[0]
    Xf = Xk.ravel()
    out = np.empty(n, dtype=np.float64)
    nchunks = (n + _CHUNK - 1) // _CHUNK
    fmask = np.int32((1 << shift) - 1)
    s32 = np.int32(shift)
    for c in prange(nchunks):
        c0 = c * _CHUNK
        m = min(n, c0 + _CHUNK) - c0
        nb = (m + _BLOCK - 1) // _BLOCK
        sn = np.zeros(nb * _BLOCK, dtype=np.float64)
        sd = np.zeros(nb * _BLOCK, dtype=np.float64)
        node = np.empty(_BLOCK, dtype=np.int32)
        for t in range(root.size):  # trees outer: one tree's nodes stay in L1 over the chunk
            for o in range(0, nb * _BLOCK, _BLOCK):
                for r in range(_BLOCK):
                    node[r] = root[t]
                base = c0 + o
                for _ in range(depth[t]):
                    for r in range(_BLOCK):  # vectorised: 8 rows per gather
                        k = node[r] & np.int32(0x7FFFFFFF)
                        w = link[k]
                        row = np.int32(min(base + r, n - 1))  # a short last block repeats the last row
                        x = Xf[((row << s32) | (w & fmask)) & np.int32(0x7FFFFFFF)]
                        node[r] = (w >> s32) + np.int32(x > key[k])
                for r in range(_BLOCK):
                    sn[o + r] += num[node[r]]
                    sd[o + r] += den[node[r]]
        for r in range(m):
            out[c0 + r] = sn[r] / sd[r]
    return out
