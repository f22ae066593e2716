"""A bundle's scoring snapshot: the node tables encoded once plus the network's head.

`scoring.pt` in a bundle holds what ranking and rating known users need, and nothing of
the encoder: the user (n_users, d) and movie (n_movies, d) tables `encode` gave on the
training graph in eval mode, the network's `ScoringHead` (`RatingNet.scoring_head`) as
its spec and weights, the rating scale and whether the network predicts stars. Loading
it builds only the head (`models.heads`, torch alone), so the recommend command answers
for a known user without building the network or importing PyG. The scores are the
network's own: the head shares its decoder's modules and arithmetic, and the tables are
the ones the network's encoder gives (`tests/test_snapshot.py` checks both).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from movierec.errors import DataError
from movierec.models.base import NodeEmbeddings
from movierec.models.heads import ScoringHead, build_head
from movierec.training.checkpoints import UNREADABLE

SCORING = "scoring.pt"


@dataclass
class ScoringSnapshot:
    """Encoded tables and the head that scores them.

    Attributes:
        head: the network's scoring head, in eval mode.
        embeddings: user (n_users, d) and movie (n_movies, d) float tables.
        rating_scale: (lowest, highest) stars; predictions are clamped to it.
        predicts_ratings: whether the head's rating is in stars (False: a ranking score).
        network: the network's class name, for messages.
    """

    head: ScoringHead
    embeddings: NodeEmbeddings
    rating_scale: tuple[float, float]
    predicts_ratings: bool
    network: str

    def save(self, path: Path) -> None:
        torch.save(
            {
                "spec": self.head.spec,
                "state": self.head.state_dict(),
                "user": self.embeddings.user.detach().contiguous(),
                "movie": self.embeddings.movie.detach().contiguous(),
                "rating_scale": list(self.rating_scale),
                "predicts_ratings": self.predicts_ratings,
                "network": self.network,
            },
            path,
        )

    @classmethod
    def load(cls, path: Path) -> ScoringSnapshot:
        """Read `path` on CPU (`weights_only`); a damaged file is a `DataError` naming it."""
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            head = build_head(payload["spec"])
            head.load_state_dict(payload["state"])
            embeddings = NodeEmbeddings(payload["user"], payload["movie"])
            scale = tuple(float(v) for v in payload["rating_scale"])
            predicts = bool(payload["predicts_ratings"])
            network = str(payload.get("network", "the network"))
        except (*UNREADABLE, KeyError, TypeError, DataError) as err:  # RuntimeError: UNREADABLE
            reason = " ".join(str(err).split())[:200]
            raise DataError(
                f"bundle file {path} is missing or damaged ({reason}); download the model "
                "again (e.g. `mlflow artifacts download`) or retrain it"
            ) from None
        return cls(head.eval(), embeddings, scale, predicts, network)

    @classmethod
    def of(cls, net, graph, rating_scale: tuple[float, float]) -> ScoringSnapshot | None:
        """`net`'s snapshot on its training `graph` (None: the net offers no head)."""
        head = net.scoring_head()
        if head is None:
            return None
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad():
                embeddings = net.encode(graph)
        finally:
            net.train(was_training)
        return cls(
            head.eval(),
            embeddings,
            tuple(rating_scale),
            bool(net.predicts_ratings),
            type(net).__name__,
        )
