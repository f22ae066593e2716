"""`MovieLensDataModule`: download once per node, then parse, split and build the graph.

`prepare_data` (one process per node) fetches the archive and builds the processed cache;
`setup` (every process) loads the cache, applies the split and builds the message graph
from the training ratings only. Loaders yield `(user, movie, rating)` batches (see
`movierec.data.batches`); the training loop reads the graph, schema and split rows from
one typed `SplitData` (`datamodule.split_data`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from torch_geometric.data import HeteroData

from movierec.data.batches import RatingBatches
from movierec.data.cache import load_ratings_data, prepare_processed
from movierec.data.features import check_user_feature_kind
from movierec.data.graph import RATES, GraphSchema, build_graph
from movierec.data.processed import RatingsData, release_arrow_memory
from movierec.data.sampling import check_loader, neighbor_loader
from movierec.data.sources import DataSettings
from movierec.data.split_data import PARTS, Rows, SplitData
from movierec.data.splits import RandomSplit, Split, SplitIndices, check_fit_parts
from movierec.errors import ConfigError

log = logging.getLogger(__name__)


class MovieLensDataModule(pl.LightningDataModule):
    """One dataset, one split (one fold), served as rating batches plus a message graph.

    Args:
        name, cache_dir, mirror, url, sha256, verify_counts, missing_movies, rating_scale,
            ratings_path, movies_path, synthetic, engine, spark: see `DataSettings`.
        split: a `Split` (default: random 80/10/10, seed 0).
        user_features: "placeholder" | "side" | "none" (see `movierec.data.features`).
        placeholder_dim: length of the placeholder user vector.
        batch_size: supervision ratings per step; 0 = the whole split in one batch.
        eval_batch_size: ratings per validation/test batch; 0 = all at once.
        seed: shuffling seed of the training batches.
        shuffle: "auto" (mini-batches reshuffled every epoch, a full batch kept in split
            order) | true (always reshuffled) | false (see `RatingBatches`).
        loader: "full" (rating batches over the whole graph) | "neighbor" (sampled
            subgraphs for training, see `movierec.data.sampling`).
        num_neighbors: neighbours sampled per hop with loader=neighbor.
    """

    def __init__(
        self,
        name: str = "ml_latest_small",
        cache_dir: str = "data",
        *,
        split: Split | None = None,
        mirror: str | None = None,
        url: str | None = None,
        sha256: str | None = None,
        verify_counts: bool = True,
        missing_movies: str = "error",
        rating_scale: tuple[float, float] | None = None,
        ratings_path: str | None = None,
        movies_path: str | None = None,
        synthetic: dict[str, int] | None = None,
        engine: str = "pandas",
        spark: Mapping[str, Any] | None = None,
        user_features: str = "placeholder",
        placeholder_dim: int = 20,
        batch_size: int = 0,
        eval_batch_size: int = 0,
        seed: int = 0,
        shuffle: bool | str = "auto",
        loader: str = "full",
        num_neighbors: list[int] | tuple[int, ...] = (10, 10),
    ) -> None:
        super().__init__()
        num_neighbors = list(num_neighbors)
        _check_settings(user_features, batch_size, eval_batch_size, shuffle, loader, num_neighbors)
        self.settings = DataSettings(
            name=name,
            cache_dir=str(cache_dir),
            mirror=mirror,
            url=url,
            sha256=sha256,
            verify_counts=verify_counts,
            missing_movies=missing_movies,
            rating_scale=tuple(rating_scale) if rating_scale is not None else None,
            ratings_path=ratings_path,
            movies_path=movies_path,
            synthetic=dict(synthetic or {}),
            engine=engine,
            spark=_plain(spark),
        )
        self.split = split or RandomSplit()
        self.user_features = user_features
        self.placeholder_dim = placeholder_dim
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.loader = loader
        self.num_neighbors = num_neighbors
        self.data: RatingsData | None = None
        self.indices: SplitIndices | None = None
        self.graph: HeteroData | None = None
        self._split_data: SplitData | None = None

    def prepare_data(self) -> None:
        prepare_processed(self.settings)

    def setup(self, stage: str | None = None) -> None:
        if self.graph is not None:
            return
        self.data = load_ratings_data(self.settings)
        self.indices = self.split.assign(self.data)
        if stage == "fit":
            check_fit_parts(self.indices, self.split, self._label())
        self.graph = build_graph(
            self.data, self.indices.train, self.user_features, self.placeholder_dim
        )
        log.info(
            "%s %s: %s ratings, %s users, %s movies; split %s",
            self.settings.name,
            self.split.describe(),
            f"{self.data.n_ratings:,}",
            f"{self.data.n_users:,}",
            f"{self.data.n_movies:,}",
            self.indices.sizes(),
        )

    def _label(self) -> str:
        """The data as messages name it: the user's ratings file, or the dataset's name."""
        if self.settings.name == "ratings_csv":
            return f"data.ratings_path={self.settings.ratings_path}"
        return f"data={self.settings.name}"

    def release_ratings_table(self) -> None:
        """For a training, after `setup`: free the columns of `data.ratings` (785 MiB at
        ML-25M, measured). A training reads the ratings only through `split_data`, the graph's
        edges and the split's held-out rows, which are gathered here first; `data` keeps
        its node tables and its row count. Until then `data` stays whole (inspect_data
        exports all of it)."""
        if self.graph is None:
            raise RuntimeError("call setup() before releasing the ratings it read")
        self.split_data  # noqa: B018  (gathers the held-out rows while the table is here)
        self.data = self.data.without_ratings()
        release_arrow_memory()

    @property
    def schema(self) -> GraphSchema:
        """Sizes, feature widths and rating levels models are built for."""
        if self.graph is None:
            raise RuntimeError("call setup() before asking for the schema")
        return GraphSchema.from_graph(self.graph, self.rating_scale)

    @property
    def split_data(self) -> SplitData:
        """The graph, schema and split rows of this fold (built once, after `setup`)."""
        if self._split_data is None:
            parts = {part: self.rows(part) for part in PARTS}
            self._split_data = SplitData(self.graph, self.schema, parts, self.loader)
        return self._split_data

    @property
    def rating_scale(self) -> tuple[float, float]:
        return self.settings.scale

    @property
    def train_mean_rating(self) -> float:
        """Mean training rating in stars (the global-mean baseline and MF's offset)."""
        return float(self.rows("train")[2].mean())

    def train_dataloader(self) -> DataLoader:
        if self.loader == "neighbor":
            assert self.graph is not None
            return neighbor_loader(
                self.graph, self.rows("train"), self.num_neighbors, self.batch_size
            )
        return self._loader("train", self.batch_size, shuffle=self.shuffle)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)

    def rows(self, part: str) -> Rows:
        """(user, movie, rating) tensors of split part "train", "val" or "test"."""
        if self.data is None or self.indices is None:
            raise RuntimeError("call setup() before asking for data")
        if part == "train" and self.graph is not None:
            # the training rows are the graph's message edges, gathered in the same order
            # (`setup` builds the graph from indices.train): views, not a second copy
            # (400 MB at ML-25M)
            store = self.graph[RATES]
            return Rows(store.edge_index[0], store.edge_index[1], store.edge_label)
        rows: np.ndarray = getattr(self.indices, part)
        ratings = self.data.ratings
        return Rows(
            torch.from_numpy(ratings["user"].to_numpy()[rows]),
            torch.from_numpy(ratings["movie"].to_numpy()[rows]),
            torch.from_numpy(ratings["rating"].to_numpy()[rows]),
        )

    def _loader(self, part: str, batch_size: int, shuffle: bool | str) -> DataLoader:
        batches = RatingBatches(
            *self.split_data.rows(part),  # built once per fold, shared with the module
            batch_size=batch_size,
            shuffle=shuffle,
            seed=self.seed,
            epoch=self._current_epoch,
        )
        # Each item already is a batch; workers would only copy in-memory slices.
        return DataLoader(batches, batch_size=None, num_workers=0)

    def _current_epoch(self) -> int:
        trainer = self.trainer
        return trainer.current_epoch if trainer is not None else 0

    def state_dict(self) -> dict[str, Any]:
        return {"dataset": self.settings.name, "split": self.split.describe()}


def _plain(node: Mapping[str, Any] | None) -> dict[str, Any]:
    """A config mapping (Hydra passes `DictConfig`) as plain nested dicts."""
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]
    return dict(node or {})


def _check_settings(
    user_features: str, batch_size: int, eval_batch_size: int, shuffle: bool | str,
    loader: str, num_neighbors: list[int],
) -> None:  # fmt: skip
    """Refuse a data setting before any download (not at setup), naming its key."""
    check_user_feature_kind(user_features)
    for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
        if not isinstance(value, int) or value < 0:
            raise ConfigError(f"data.{key}={value!r}: expected an integer ≥ 0 (0 = all)")
    check_loader(loader, batch_size, num_neighbors)
    if shuffle not in ("auto", True, False):
        raise ConfigError(f"data.shuffle={shuffle!r}: expected auto, true or false")
