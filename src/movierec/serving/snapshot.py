"""Write a bundle's scoring snapshot: the node tables encoded once plus the network's head.

`scoring.npz` (layout in `serving.tables`) holds what ranking and rating known users
need, and nothing of the encoder: the user (n_users, d) and movie (n_movies, d) tables
`encode` gives on the training graph in eval mode, and the network's `ScoringHead`
(`RatingNet.scoring_head`) as its spec and weights. `serving.tables` reads it with NumPy
alone, so the recommend command answers for a known user without importing torch;
`tests/test_snapshot.py` checks its scores against the network's.
"""

from __future__ import annotations

from pathlib import Path

import torch

from movierec.serving.numpy_heads import supports
from movierec.serving.tables import write_scoring


def write_snapshot(net, graph, rating_scale: tuple[float, float], path: Path) -> bool:
    """Write `net`'s snapshot on its training `graph` to `path`; False (nothing written)
    when the network offers no scoring head, or one `serving.numpy_heads` cannot evaluate
    (the bundle is then served by the network)."""
    head = net.scoring_head()
    if head is None or not supports(head.spec):
        return False
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            embeddings = net.encode(graph)
    finally:
        net.train(was_training)
    write_scoring(
        path,
        user=embeddings.user.detach().float().cpu().numpy(),
        movie=embeddings.movie.detach().float().cpu().numpy(),
        spec=head.spec,
        state={
            name: value.detach().float().cpu().numpy() for name, value in head.state_dict().items()
        },
        rating_scale=tuple(rating_scale),
        predicts_ratings=bool(net.predicts_ratings),
        network=type(net).__name__,
    )
    return True
