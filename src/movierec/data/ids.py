"""Distinct ids, their counts, positions in sorted ids, and one rating per id pair, all
vectorised over int64 id columns (n,).

MovieLens ids are dense (the largest is at most a few times the number of distinct
ones), so ids are counted into and looked up in a table of `max + 1` slots: O(n), no
sort. Negative or very large ids fall back to NumPy's sorting functions, with the same
results.
"""

from __future__ import annotations

import numpy as np

#: largest id table (slots of int64) built instead of sorting: 512 MiB
TABLE_LIMIT = 1 << 26


def _table_size(values: np.ndarray) -> int | None:
    """`max + 1` if `values` are non-negative and fit a table, else None."""
    if len(values) == 0 or values.min() < 0:
        return None
    size = int(values.max()) + 1
    return size if size <= TABLE_LIMIT else None


def distinct_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values (k,) int64 and how often each occurs (k,) int64."""
    size = _table_size(values)
    if size is None:
        ids, counts = np.unique(values, return_counts=True)
        return ids.astype(np.int64), counts.astype(np.int64)
    counts = np.bincount(values, minlength=size)
    ids = np.flatnonzero(counts)
    return ids.astype(np.int64), counts[ids].astype(np.int64)


def distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (k,) int64."""
    return distinct_counts(values)[0]


def positions(sorted_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Position (n,) int64 of each of `values` in `sorted_ids`; every value must occur."""
    size = _table_size(sorted_ids)
    if size is None:
        return np.searchsorted(sorted_ids, values).astype(np.int64)
    table = np.zeros(size, dtype=np.int64)
    table[sorted_ids] = np.arange(len(sorted_ids), dtype=np.int64)
    return table[values]


def latest_per_pair(
    users: np.ndarray, movies: np.ndarray, timestamps: np.ndarray | None
) -> np.ndarray | None:
    """Rows (n,) bool to keep so that each (user, movie) pair keeps one row: the latest by
    timestamp, ties and no timestamps going to the last in file order. None: no pair
    repeats (every row is kept). Ids must be non-negative.

    Only rows of repeated pairs are sorted by time; the rest needs one sort of the pair
    keys (none if the rows are in strictly increasing pair order, as in ml-25m's file).
    """
    keys = _pair_keys(users, movies)
    if keys is None:  # ids too large to combine: number the pairs in (user, movie) order
        pairs = np.stack([users, movies], axis=1)
        keys = np.unique(pairs, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)
    if len(keys) < 2 or np.all(keys[1:] > keys[:-1]):
        return None
    sorted_keys = np.sort(keys)
    repeated = sorted_keys[1:][sorted_keys[1:] == sorted_keys[:-1]]
    if len(repeated) == 0:
        return None
    repeated = np.unique(repeated)
    slot = np.minimum(np.searchsorted(repeated, keys), len(repeated) - 1)
    rows = np.flatnonzero(repeated[slot] == keys)  # every row of a repeated pair, file order
    sort_keys = (rows,) if timestamps is None else (rows, timestamps[rows])
    rows = rows[np.lexsort((*sort_keys, keys[rows]))]  # by pair, then time, then position
    group = keys[rows]
    superseded = rows[:-1][group[1:] == group[:-1]]  # all but the last row of each pair
    keep = np.ones(len(keys), dtype=bool)
    keep[superseded] = False
    return keep


def _pair_keys(users: np.ndarray, movies: np.ndarray) -> np.ndarray | None:
    """`user * (max movie + 1) + movie` (n,) int64, one per pair; None if it could overflow."""
    if len(users) == 0:
        return np.zeros(0, dtype=np.int64)
    width = int(movies.max()) + 1
    if (int(users.max()) + 1) * width >= 1 << 63:
        return None
    return users.astype(np.int64) * width + movies
