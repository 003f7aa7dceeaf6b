"""Cross-validation folds grouped by location (method step 4; Roberts et al. 2017, Ecography
40:913, "Cross-validation strategies for data with temporal, spatial, hierarchical, or
phylogenetic structure").

Site names in SRDB are not locations: one forest can appear under several names, and two
names can share coordinates. Folds are therefore built from *location groups*: sites joined
by single linkage when their great-circle distance is at most ``distance_km`` (default in
the config: one grid cell). Sites with equal coordinates always share a group.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)


def location_groups(lat: np.ndarray, lon: np.ndarray, distance_km: float) -> np.ndarray:
    """Location group (int64, 0..k-1, numbered by first appearance) of each point.

    Points (degrees) closer than or equal to ``distance_km`` (great-circle, km) are linked,
    and groups are the connected components of that graph (single linkage), so a chain of
    near sites is one group. ``distance_km = 0`` groups equal coordinates only. A point with
    a NaN coordinate is a group of its own.
    """
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    if lat.shape != lon.shape or lat.ndim != 1:
        raise ValueError("lat and lon must be 1-D arrays of the same length")
    if not np.isfinite(distance_km) or distance_km < 0:
        raise ValueError(f"distance_km must be >= 0, got {distance_km!r}")
    n = lat.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    ok = np.isfinite(lat) & np.isfinite(lon)
    # unique coordinates first: equal points are one node
    key = np.where(ok[:, None], np.c_[lat, ((lon + 180.0) % 360.0) - 180.0], np.nan)
    uniq, inv = np.unique(np.round(key[ok], 9), axis=0, return_inverse=True)
    inv = np.asarray(inv).ravel()
    m = uniq.shape[0]
    rows, cols = [np.arange(m)], [np.arange(m)]
    if distance_km > 0 and m > 1:
        from sklearn.neighbors import BallTree

        tree = BallTree(np.deg2rad(uniq), metric="haversine")
        nbrs = tree.query_radius(np.deg2rad(uniq), r=distance_km / EARTH_RADIUS_KM)
        for a, nb in enumerate(nbrs):
            rows.append(np.full(nb.size, a))
            cols.append(nb)
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(r.size, dtype=np.int8), (r, c)), shape=(m, m))
    _, comp = connected_components(graph, directed=False)
    raw = np.empty(n, dtype=np.int64)
    raw[ok] = comp[inv]
    raw[~ok] = m + np.arange((~ok).sum())  # NaN coordinates: each its own group
    # renumber by first appearance so the labels do not depend on coordinate order
    _, first, lab = np.unique(raw, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[np.asarray(lab).ravel()].astype(np.int64)
