"""`pair_dot`: z_user[user] · z_movie[movie] for B index pairs, without the (B, d) gathers.

The plain form `(z_user[user] * z_movie[movie]).sum(-1)` writes two (B, d) tensors and,
in backward, scatters (B, d) rows back into the tables with an accumulating index_put,
which torch runs nearly serially on CPU. At 20M training pairs that was ~80% of a SAGE
or GCN epoch. The pairs are the non-zeros of a sparse users × movies pattern, so

    forward      s = SDDMM(pattern, z_user, z_movie^T)       (torch.sparse.sampled_addmm)
    backward     ∂z_user  = G @ z_movie,   ∂z_movie = G^T @ z_user

with G the pattern carrying the upstream gradient: one sampled product and two CSR × dense
products, the same kernels as message passing. torch has these kernels but no fused
"dot product of gathered rows" op, hence this thin autograd function; it falls back to the
plain form where sampled_addmm has no kernel (half precision, or a device without it).
Duplicate pairs are allowed (each is its own non-zero) and the result is in the pairs'
order. A batch with at least as many pairs as the tables have (user, movie) cells, which
sampled_addmm refuses, takes the plain form too. Tested against the plain form, values
and gradients, in float64.

∂z_movie needs the pairs grouped by movie. In float32 each pair fits one 64-bit word,
movie | user − min user | the gradient's 32 bits, whenever the movie and user spans fit
32 bits (a chunk of user-ordered training pairs at ML-25M: 16 + 13), and one vectorised
NumPy sort of the words (`words_by_row`) replaces torch's argsort of the movies and the
gather of users and gradients into that order. Otherwise the argsort path runs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.autograd.function import once_differentiable

_SPARSE_DTYPES = (torch.float32, torch.float64)


def pair_dot(
    z_user: torch.Tensor, z_movie: torch.Tensor, user: torch.Tensor, movie: torch.Tensor
) -> torch.Tensor:
    """(B,) dot products of rows `user` of z_user (n_users, d) and rows `movie` of
    z_movie (n_movies, d); `user`, `movie` (B,) int64."""
    if (
        z_user.dtype not in _SPARSE_DTYPES
        or z_user.dtype != z_movie.dtype
        or z_user.device.type != "cpu"
        or len(user) == 0
        # sampled_addmm fails on a pattern with as many entries as the dense matrix has
        # cells (possible with repeated pairs on a tiny graph)
        or len(user) >= z_user.shape[0] * z_movie.shape[0]
    ):
        return (z_user[user] * z_movie[movie]).sum(dim=-1)
    return _PairDot.apply(z_user, z_movie, user, movie)


def row_order(rows: torch.Tensor, n_rows: int) -> torch.Tensor | None:
    """The stable order that sorts `rows` (B,), or None when they are sorted already (a
    2 ms check that saves the sort for user-ordered training pairs). Columns stay in
    pair order within a row: torch's CSR kernels (sampled_addmm, CSR @ dense) do not
    need them sorted, and the tests compare with the gathered form."""
    if len(rows) < 2 or bool((rows[1:] >= rows[:-1]).all()):
        return None
    keys = rows.to(torch.int32) if n_rows < 2**31 else rows  # int32 sorts ~2× faster
    return torch.argsort(keys, stable=True)


def csr_of_pairs(rows, cols, n_rows: int, n_cols: int, values: torch.Tensor, order):
    """CSR (n_rows, n_cols) with one entry per pair, rows ascending, given `row_order`;
    its indices have the dtype of `cols` (int32 or int64)."""
    crow = _row_pointers(rows, n_rows, cols.dtype)
    if order is not None:
        cols, values = _gather_pairs(cols, values, order)
    return torch.sparse_csr_tensor(crow, cols, values, (n_rows, n_cols))


def csr_by_row(rows, cols, n_rows: int, n_cols: int, values: torch.Tensor):
    """CSR (n_rows, n_cols) with one entry values[p] at (rows[p], cols[p]), rows
    ascending: by `words_by_row` where float32 values on CPU and the spans fit its words,
    else by `row_order` + `csr_of_pairs`."""
    words = None
    if values.dtype == torch.float32 and values.device.type == "cpu":
        words = words_by_row(rows, cols, values, n_rows)
    if words is not None:
        return torch.sparse_csr_tensor(*words, (n_rows, n_cols))
    return csr_of_pairs(rows, cols, n_rows, n_cols, values, row_order(rows, n_rows))


def _row_pointers(rows: torch.Tensor, n_rows: int, dtype: torch.dtype) -> torch.Tensor:
    """A CSR's crow_indices (n_rows + 1,) for entries in rows `rows`, in `dtype`."""
    crow = torch.zeros(n_rows + 1, dtype=dtype, device=rows.device)
    torch.cumsum(torch.bincount(rows, minlength=n_rows), 0, out=crow[1:])
    return crow


def words_by_row(
    rows: torch.Tensor,
    cols: torch.Tensor,
    values: torch.Tensor,
    n_rows: int,
    value_bits: int = 32,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(crow, col, value), int32/int32/float32, of a CSR with one entry values[p] at
    (rows[p], cols[p]), rows ascending: the matrix `row_order` + `csr_of_pairs` build
    (there a row keeps its entries in pair order, here in column order), by one sort of
    a uint64 word per entry, row | col − min col | the value's low `value_bits` bits,
    with NumPy's vectorised sort (AVX-512/AVX2 on x86). torch's CPU sort is not
    vectorised: for 5M int32 keys its argsort took 230–410 ms and the gather 160 ms,
    against 100 ms for NumPy's sort of 5M words (2026-12-03). rows, cols (P,) integer,
    0 ≤ rows < n_rows; values (P,) float32, any with value_bits=32, or in [0, 2) with
    value_bits=30, whose sign and top exponent bit are zero, for two more bits of span.
    None when the words or the int32 indices cannot hold them: no entry, row and column
    span over 64 − value_bits bits, a value out of range, a column or an entry count
    from 2^31."""
    if values.dtype != torch.float32:
        raise TypeError(f"words_by_row packs float32 values, not {values.dtype}")
    if len(rows) == 0 or len(rows) >= 2**31:
        return None
    bits = values.view(torch.int32)
    if value_bits < 32 and bool((bits >> value_bits).any()):
        return None
    first_col, last_col = int(cols.min()), int(cols.max())
    col_bits = (last_col - first_col).bit_length()
    if last_col >= 2**31 or max(n_rows - 1, 1).bit_length() + col_bits + value_bits > 64:
        return None
    words = rows.to(torch.int64) << (col_bits + value_bits)
    words |= (cols.to(torch.int64) - first_col) << value_bits
    words |= bits.to(torch.int64) & ((1 << value_bits) - 1)
    words.numpy().view(np.uint64).sort()  # in place; rows first, as unsigned integers
    col = ((words >> value_bits) & ((1 << col_bits) - 1)).to(torch.int32) + first_col
    # the low 32 bits back to int32 (two's complement), then reread as float32
    value = (words & ((1 << value_bits) - 1)).to(torch.int32).view(torch.float32)
    return _row_pointers(rows, n_rows, torch.int32), col, value


def _gather_pairs(cols: torch.Tensor, values: torch.Tensor, order: torch.Tensor):
    """cols[order], values[order]. int32 columns and float32 values are gathered as one
    8-byte word per pair: a random gather costs a cache miss per element, so one gather
    of the pair costs about half of two."""
    if cols.dtype != torch.int32 or values.dtype != torch.float32:
        return cols[order], values[order]
    words = torch.stack([cols, values.view(torch.int32)], 1).view(torch.int64).view(-1)
    pairs = words[order].view(torch.int32).view(-1, 2)
    return pairs[:, 0].contiguous(), pairs[:, 1].contiguous().view(torch.float32)


class _PairDot(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z_user, z_movie, user, movie):
        n_users, n_movies = z_user.shape[0], z_movie.shape[0]
        order = row_order(user, n_users)
        ones = torch.ones(len(user), dtype=z_user.dtype, device=z_user.device)
        pattern = csr_of_pairs(user, movie, n_users, n_movies, ones, order)
        sampled = torch.sparse.sampled_addmm(pattern, z_user, z_movie.T, beta=0.0).values()
        if order is not None:
            out = torch.empty_like(sampled)
            out[order] = sampled
            sampled = out
        ctx.save_for_backward(z_user, z_movie, user, movie)
        # reused in backward: the pattern's structure and the sort that made it
        ctx.by_user = (pattern.crow_indices(), pattern.col_indices(), order)
        return sampled

    @staticmethod
    @once_differentiable  # its products (and `words_by_row`'s integer words) build no graph
    def backward(ctx, grad):
        z_user, z_movie, user, movie = ctx.saved_tensors
        n_users, n_movies = z_user.shape[0], z_movie.shape[0]
        grad_user = grad_movie = None
        grad = grad.contiguous()
        if ctx.needs_input_grad[0]:
            crow, col, order = ctx.by_user
            values = grad if order is None else grad[order]
            by_user = torch.sparse_csr_tensor(crow, col, values, (n_users, n_movies))
            grad_user = by_user @ z_movie
        if ctx.needs_input_grad[1]:
            grad_movie = csr_by_row(movie, user, n_movies, n_users, grad) @ z_user
        return grad_user, grad_movie, None, None
