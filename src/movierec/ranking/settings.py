"""`RankingSettings`: the `ranking` group of `conf/train.yaml` as code reads it, checked once.

Its field names are the config's keys and its defaults the YAML's (a test holds them
together), so `RankingSettings.from_settings(cfg.ranking)` is the one reading of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from movierec.checks import settings_node
from movierec.errors import ConfigError
from movierec.ranking.metrics import parse_ks
from movierec.ranking.protocol import RELEVANT_RATING


@dataclass(frozen=True)
class RankingSettings:
    """How a run ranks.

    Attributes:
        k: list lengths K of the top-K metrics, ascending (an int or a list as given;
            0 or [] = off, `()`).
        relevant_rating: a held-out rating ≥ this many stars makes a movie relevant.
        validate: also rank the validation split every epoch (`val/ndcg_at_<K>`, …), so
            `selection` can pick on them.
        val_users: rank only this many validation users, a fixed random sample (0 = all).
    """

    k: tuple[int, ...] = (10, 20)
    relevant_rating: float = RELEVANT_RATING
    validate: bool = False
    val_users: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", parse_ks(self.k))  # ConfigError naming ranking.k
        if self.validate and not self.k:
            raise ConfigError("ranking.validate=true needs ranking.k ≥ 1 (it is 0 or []: off)")
        rating = self.relevant_rating
        if not isinstance(rating, (int, float)) or isinstance(rating, bool):
            raise ConfigError(f"ranking.relevant_rating={rating!r}: expected a rating in stars")
        users = self.val_users
        if not isinstance(users, int) or isinstance(users, bool) or users < 0:
            raise ConfigError(f"ranking.val_users={users!r}: expected an integer ≥ 0 (0 = all)")

    @classmethod
    def from_settings(cls, settings: Mapping | None) -> RankingSettings:
        """The settings a `ranking` node holds (a key left out takes its default, an
        unknown one is refused by name)."""
        return settings_node(cls, "ranking", settings)

    def as_dict(self) -> dict:
        """Plain values, as a checkpoint keeps them."""
        return asdict(self) | {"k": list(self.k)}
