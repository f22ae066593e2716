"""Fold-in: a user given at request time, fitted to their ratings with the network frozen.

A network with learned per-user tables (ID embeddings, rating offsets b_u) has no row for
a user it was not trained with. Fold-in gives them one: the new user joins the message
graph with the mean ID row (`models.inputs`), is encoded once to z₀, and then their
embedding z = z₀ + δ and offset b are fitted to the N given ratings, every weight of the
network and every movie's embedding fixed:

    min over δ, b of  1/N Σ_j (r̂(z, b, m_j) − r_j)² + λ (‖δ‖² + b²)

by L-BFGS on a (d + 1)-dimensional problem that decodes N pairs per step (milliseconds);
the one encoding of the grown graph is the rest of the cost. Matrix factorisation solves
the same problem in closed form (`models.mf`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

#: λ of the fold-in's ridge term (pulls z towards the encoded z₀ and b towards 0)
FOLD_IN_REG = 0.01
#: L-BFGS iterations
FOLD_IN_STEPS = 50


def fold_in(
    rate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    stars: torch.Tensor,
    reg: float = FOLD_IN_REG,
    steps: int = FOLD_IN_STEPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The user's embedding z and offset b fitted to `stars` (N,).

    Args:
        rate: (z (d,), b ()) → (N,) the predicted stars of the user's N rated movies.
        start: z₀ (d,), where z starts and what the ridge term pulls it to.
    """
    start = start.detach()
    delta = torch.zeros_like(start, requires_grad=True)
    offset = torch.zeros((), dtype=start.dtype, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [delta, offset], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe"
    )
    target = stars.to(start.dtype)

    def closure() -> torch.Tensor:
        error = F.mse_loss(rate(start + delta, offset), target)
        loss = error + reg * (delta.pow(2).sum() + offset.pow(2))
        # gradients of δ and b only: the network's weights stay frozen and untouched
        delta.grad, offset.grad = torch.autograd.grad(loss, [delta, offset])
        return loss.detach()

    with torch.enable_grad():
        optimizer.step(closure)
    return (start + delta).detach(), offset.detach()
