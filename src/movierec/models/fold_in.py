"""Fold-in: a user given at request time, fitted to their ratings with the network frozen.

A network with learned per-user tables (ID embeddings, rating offsets b_u) has no row for
a user it was not trained with. Fold-in gives them one: the new user joins the message
graph with the mean ID row (`models.inputs`), is encoded once to z₀, and then their
embedding z = z₀ + δ and offset b are fitted to the N given ratings, every weight of the
network and every movie's embedding fixed:

    min over δ, b of  1/N Σ_j (r̂(z, b, m_j) − r_j)² + λ (‖δ‖² + b²)

plus, for a network with a ranking output, that output's BPR term over the given movies
(against a seeded draw of movies not given), as in training (`models.ranking_output`),

by L-BFGS on a (d + 1)-dimensional problem that decodes N pairs per step (milliseconds);
the one encoding of the grown graph is the rest of the cost. Matrix factorisation solves
the same problem in closed form (`models.mf`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

#: λ of the fold-in's ridge term (pulls z towards the encoded z₀ and b towards 0). Chosen on
#: the cold-start protocol of ml-latest-small (`scripts/cold_start.py`, 61 held-out users,
#: mean NDCG@10 over N = 1, 3, 5, 10 given ratings): 0.01 → 0.2824, 0.1 → 0.3277,
#: 1 → 0.3975, 3 → 0.3994, 10 → 0.4021. A light ridge lets the few given ratings pull the
#: embedding away from what the graph encoder made of them.
FOLD_IN_REG = 10.0
#: L-BFGS iterations
FOLD_IN_STEPS = 50
#: movies drawn as the new user's negatives for a ranking output's BPR term
NEGATIVES = 256


def fold_in(
    data_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    reg: float | None = None,
    steps: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The user's embedding z and offset b minimising data_loss(z, b) + λ(‖z − z₀‖² + b²).

    Args:
        data_loss: (z (d,), b ()) → () the fit to the given ratings, e.g. the mean squared
            error of the predicted stars (`rating_error`).
        start: z₀ (d,), where z starts and what the ridge term pulls it to.
        reg, steps: λ and the L-BFGS iterations (default `FOLD_IN_REG`, `FOLD_IN_STEPS`).
    """
    reg = FOLD_IN_REG if reg is None else reg
    steps = FOLD_IN_STEPS if steps is None else steps
    start = start.detach()
    delta = torch.zeros_like(start, requires_grad=True)
    offset = torch.zeros((), dtype=start.dtype, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [delta, offset], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        loss = data_loss(start + delta, offset) + reg * (delta.pow(2).sum() + offset.pow(2))
        # gradients of δ and b only: the network's weights stay frozen and untouched
        delta.grad, offset.grad = torch.autograd.grad(loss, [delta, offset])
        return loss.detach()

    with torch.enable_grad():
        optimizer.step(closure)
    return (start + delta).detach(), offset.detach()


def rating_error(
    rate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], stars: torch.Tensor
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """data_loss(z, b) = 1/N Σ_j (rate(z, b)_j − r_j)², `rate` giving the N predicted stars."""
    target = stars.float()
    return lambda z, b: F.mse_loss(rate(z, b), target.to(z.dtype))


def ranking_error(
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    movies: torch.Tensor,
    n_movies: int,
    weight: float,
    n_negatives: int = NEGATIVES,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """λ · BPR of the N given movies over `n_negatives` movies not given (a fixed, seeded
    draw): the ranking output's own training term for the new user. `score(z, movies)`
    gives the user's ranking scores of `movies`."""
    generator = torch.Generator().manual_seed(0)
    drawn = torch.randint(n_movies, (n_negatives,), generator=generator)
    negatives = drawn[~torch.isin(drawn, movies)]

    def loss(z: torch.Tensor) -> torch.Tensor:
        margin = score(z, movies).unsqueeze(1) - score(z, negatives).unsqueeze(0)
        return -weight * F.logsigmoid(margin).mean()

    return loss
