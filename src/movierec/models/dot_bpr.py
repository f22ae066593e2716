"""`dot_bpr`: BPR over dot-product scores, its gradient computed in the same pass.

For B positives (u_b, m_b), N negatives j_bn each and scores ŝ(u, m) = z_u · z_m,

    L = 1/(B·N) · Σ_b Σ_n −log σ(ŝ(u_b, m_b) − ŝ(u_b, j_bn))        (objective.bpr)

    ∂L/∂ŝ(u_b, j_bn) = w_bn = σ(ŝ(u_b, j_bn) − ŝ(u_b, m_b)) / (B·N),
    ∂L/∂ŝ(u_b, m_b)  = −Σ_n w_bn,
    ∂L/∂z_user = G z_movie,   ∂L/∂z_movie = Gᵀ z_user,

with G the (n_users, n_movies) sparse matrix of those B·(N + 1) pair gradients. The
generic path (`Objective.batch_loss`) decodes the pairs in checkpointed chunks, so its
backward runs every chunk's forward again: at ML-25M (20M positives, 80M negatives) that
recomputation was a fifth of a LightGCN epoch. Here each chunk's scores, loss and
gradients are computed once, in forward, with the same sampled product and CSR × dense
products as `pair_dot`; only the two gradient tables are kept for backward, so memory
stays bounded by one chunk as with checkpointing. torch has no fused op for this (it is
what Liger-Kernel's fused linear cross-entropy does for language models), hence this thin
autograd function. It applies where `pair_dot`'s sampled product does (float32/64 on CPU)
and gives the generic path's value and gradients (tested, float64).

The movie gradient needs the pairs grouped by movie. A stable argsort of the chunk's
movies and a gather of its columns and gradients into that order were 40% of the fused
BPR at ML-25M. For float32 tables each pair is one 64-bit word instead, sorted by NumPy
(`pair_dot.words_by_row`): movie, user and the 30 low bits of a gradient factor in
[0, 1], σ for a negative and Σσ / 2^k for a positive. Sign and top exponent bit are zero
there, so nothing is rounded (but a subnormal Σσ / 2^k, below 1e-38), and shuffled
mini-batches at ML-25M, 16 + 18 bits of movie and user, still fit. Where the words
cannot hold a chunk (over 34 bits of movie and user span, e.g. ML-32M's 87,585 movies
with shuffled users) or the tables are float64, the argsort path runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from movierec.models.pair_dot import csr_by_row, csr_of_pairs, row_order, words_by_row

_DTYPES = (torch.float32, torch.float64)


def dot_bpr_applies(z_user: torch.Tensor, z_movie: torch.Tensor, n_negatives: int) -> bool:
    """Whether `dot_bpr` can run on these tables: float32/64 on CPU, and a graph with
    more (user, movie) cells than one positive's N + 1 pairs (sampled_addmm refuses a
    pattern as large as the dense matrix)."""
    return (
        z_user.dtype in _DTYPES
        and z_user.dtype == z_movie.dtype
        and z_user.device.type == "cpu"
        and z_movie.device.type == "cpu"
        and z_user.shape[0] * z_movie.shape[0] > n_negatives + 1
    )


def dot_bpr(
    z_user: torch.Tensor,
    z_movie: torch.Tensor,
    user: torch.Tensor,
    movie: torch.Tensor,
    negative: torch.Tensor,
    chunk: int = 0,
) -> torch.Tensor:
    """Mean BPR loss (scalar) of positives `user`, `movie` (B,) int64 against `negative`
    (B, N) int64 movie indices, scored by rows of z_user (n_users, d) and z_movie
    (n_movies, d); `chunk` positives at a time (≤ 0: all at once). Check
    `dot_bpr_applies` first."""
    # outside autograd (evaluation, no_grad) the gradient products are skipped
    with_grad = torch.is_grad_enabled() and (z_user.requires_grad or z_movie.requires_grad)
    return _DotBpr.apply(z_user, z_movie, user, movie, negative, chunk, with_grad)


class _DotBpr(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z_user, z_movie, user, movie, negative, chunk, with_grad):
        n_users, n_movies = z_user.shape[0], z_movie.shape[0]
        n_pos, n_neg = negative.shape
        # at most n_users · n_movies − 1 pairs per sampled product (tiny graphs)
        chunk = min(chunk if chunk > 0 else n_pos, (n_users * n_movies - 1) // (n_neg + 1))
        chunk = max(chunk, 1)
        grad_user, grad_movie = torch.zeros_like(z_user), torch.zeros_like(z_movie)
        # int32 indices: half the bytes to sort and gather, and the CSR products' MKL
        # kernels take them without converting int64 indices on every call (converted a
        # chunk at a time: a whole batch's 80M negatives would take 320 MB more)
        index = torch.int32 if max(n_users, n_movies, chunk * (n_neg + 1)) < 2**31 else None
        total = torch.zeros((), dtype=torch.float64)
        scale = 1.0 / max(n_pos * n_neg, 1)
        for start in range(0, n_pos, chunk):
            part = slice(start, start + chunk)
            # each positive followed by its negatives: user-ordered pairs stay user-ordered
            positive_user, positive_movie, negatives = (
                t[part].to(index or t.dtype) for t in (user, movie, negative)
            )
            pair_user = positive_user.repeat_interleave(n_neg + 1)
            pair_movie = torch.cat([positive_movie.unsqueeze(1), negatives], 1).reshape(-1)
            order = row_order(pair_user, n_users)
            ones = torch.ones(len(pair_user), dtype=z_user.dtype)
            by_user = csr_of_pairs(pair_user, pair_movie, n_users, n_movies, ones, order)
            sampled = torch.sparse.sampled_addmm(by_user, z_user, z_movie.T, beta=0.0).values()
            if order is not None:  # back to pair order
                sampled = torch.empty_like(sampled).index_copy_(0, order, sampled)
            score = sampled.view(-1, n_neg + 1)
            margin = score[:, :1] - score[:, 1:]  # (b, N): positive − negative
            total += F.logsigmoid(margin).sum(dtype=torch.float64)
            if not with_grad:
                continue
            sigma = torch.sigmoid(-margin)  # (b, N) in [0, 1]: ∂L/∂ŝ of a negative / scale
            sigma_sum = sigma.sum(1, keepdim=True)
            grad = torch.cat([-sigma_sum, sigma], 1).reshape(-1) * scale
            values = grad if order is None else grad[order]
            crow, col = by_user.crow_indices(), by_user.col_indices()
            grad_user.addmm_(torch.sparse_csr_tensor(crow, col, values, by_user.shape), z_movie)
            by_movie = None
            if z_user.dtype == torch.float32 and index is not None:
                positives = (positive_user, positive_movie, sigma_sum)
                by_movie = _by_movie_words(*positives, negatives, sigma, scale, n_users, n_movies)
            if by_movie is None:  # the pair gradients themselves, 32-bit words or argsort
                by_movie = [csr_by_row(pair_movie, pair_user, n_movies, n_users, grad)]
            for part_by_movie in by_movie:
                grad_movie.addmm_(part_by_movie, z_user)
        ctx.save_for_backward(grad_user, grad_movie)
        return (-total * scale).to(z_user.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):
        grad_user, grad_movie = ctx.saved_tensors
        return grad_loss * grad_user, grad_loss * grad_movie, None, None, None, None, None


def _by_movie_words(
    positive_user, positive_movie, sigma_sum, negatives, sigma, scale, n_users, n_movies
):
    """The chunk's pair gradients grouped by movie, as two CSR (n_movies, n_users) float32
    matrices (positives, negatives) whose sum is Gᵀ; None when the words cannot hold them.
    positive_user/positive_movie (b,) int32, negatives (b, N) int32, sigma (b, N) and
    sigma_sum (b, 1) float32."""
    n_neg = negatives.shape[1]
    # 2^shift ≥ N, so Σσ / 2^shift ≤ 1 (exact but for subnormals)
    shift = max(n_neg - 1, 1).bit_length()
    parts = (
        (positive_movie, positive_user, sigma_sum.view(-1) / 2**shift, -(2**shift) * scale),
        (negatives.reshape(-1), positive_user.repeat_interleave(n_neg), sigma.view(-1), scale),
    )
    by_movie = []
    for rows, cols, factor, multiplier in parts:
        words = words_by_row(rows, cols, factor, n_movies, value_bits=30)
        if words is None:
            return None
        crow, col, value = words
        by_movie.append(torch.sparse_csr_tensor(crow, col, value * multiplier, (n_movies, n_users)))
    return by_movie
