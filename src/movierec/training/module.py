"""`RatingPredictor`: the one LightningModule, and only the training loop.

It steps the objective (`movierec.objective`), logs torchmetrics RMSE/MAE (synced across
DDP ranks) in stars, and the top-K ranking metrics of `movierec.ranking` on validation
(optional) and test. The network is rebuilt from its config and the data schema stored in
the checkpoint, so loading one needs no datamodule (`training.checkpoints.load_predictor`,
which also reads checkpoints of earlier layouts). What
it needs from the data reaches it as one `SplitData` (graph, schema, split rows).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch_geometric.data import HeteroData
from torchmetrics import MeanAbsoluteError, MeanSquaredError

from movierec.data.graph import RATES, GraphSchema
from movierec.data.negatives import RatedPairs
from movierec.data.split_data import SplitData
from movierec.errors import ConfigError, MovieRecError
from movierec.models.adjacency import GraphCache
from movierec.models.base import NodeEmbeddings, RatingNet, build_net
from movierec.objective import Objective
from movierec.ranking.metrics import TopKRanking
from movierec.ranking.protocol import RankingProtocol
from movierec.ranking.scoring import evaluate_ranking
from movierec.ranking.settings import RankingSettings
from movierec.training.optim import (
    build_optimizer,
    build_scheduler,
    is_plateau,
    optimizer_node,
    scheduler_node,
)
from movierec.training.selection import Selection
from movierec.training.settings import check_optimisation


class RatingPredictor(pl.LightningModule):
    """Trains `net` on (user, movie, rating) batches over the split's message graph.

    Args:
        net: config of the network (`_target_` + arguments); built with `schema=`.
        schema: `GraphSchema.as_dict()` of the training data; None = that of the split
            handed over by `use_split` (a training builds its network once Lightning has
            set the data up, `training.callbacks.SplitHandoff`).
        objective: the `Objective`'s settings (`model.objective`: loss, BPR term…; see
            `movierec.objective`); None = its defaults.
        optimizer: a preset (adam | adamw | sgd) or a `_target_` node with `_partial_`.
        lr: learning rate (> 0); weight_decay: L2 / decoupled weight decay (≥ 0).
        scheduler: a preset (none | cosine | plateau | step) or a `_target_` node.
        scheduler_kwargs: extra arguments of the scheduler (e.g. factor, patience).
        ranking: the `ranking` group's settings (`RankingSettings`: K, the relevant
            rating, ranking validation, its user sample); None = its defaults.
        selection: the `selection` setting ({metric, mode}), which the plateau scheduler
            watches (None: no plateau scheduler).
    """

    def __init__(
        self,
        net: dict | DictConfig,
        schema: dict | None = None,
        objective: dict | DictConfig | None = None,
        optimizer: str | dict = "adam",
        lr: float = 0.01,
        weight_decay: float = 0.0,
        scheduler: str | dict | None = "none",
        scheduler_kwargs: dict | None = None,
        ranking: dict | DictConfig | None = None,
        selection: dict | DictConfig | None = None,
    ) -> None:
        super().__init__()
        # every argument once, as written in the signature; Hydra hands over DictConfigs and
        # checkpoints must hold plain containers (torch.load(weights_only=True))
        hparams = {k: _plain(v) for k, v in locals().items() if k not in ("self", "__class__")}
        hparams["scheduler_kwargs"] = hparams["scheduler_kwargs"] or {}
        # the checkpoint keeps every objective setting, defaults included
        self.objective = Objective.from_settings(hparams["objective"])
        hparams["objective"] = asdict(self.objective)
        self.ranking = RankingSettings.from_settings(hparams["ranking"])
        hparams["ranking"] = self.ranking.as_dict()
        self.selection = Selection(**hparams["selection"]) if hparams["selection"] else None
        # the tracking layer logs the whole resolved config instead
        self.save_hyperparameters(hparams, logger=False)
        schema = hparams["schema"]
        optimizer, scheduler = hparams["optimizer"], hparams["scheduler"]
        scheduler_kwargs = hparams["scheduler_kwargs"]
        self._optimizer = optimizer_node(optimizer)
        self._scheduler = scheduler_node(scheduler, scheduler_kwargs)
        check_optimisation(lr, weight_decay)
        self.schema: GraphSchema | None = None
        self.net: RatingNet | None = None
        self._protocols: dict[str, RankingProtocol] = {}
        self._split: SplitData | None = None
        self._graph: HeteroData | None = None
        self._rated = GraphCache()  # the message graph's rated pairs, what negatives avoid
        self._eval_embeddings: NodeEmbeddings | None = None
        if schema is not None:  # a checkpoint, or a caller that read the data itself
            self._build(GraphSchema.from_dict(schema))

    def _build(self, schema: GraphSchema) -> None:
        """The network and metrics for the data's `schema`, which the checkpoint keeps
        (loading it rebuilds the same network without the data)."""
        self.schema = schema
        self.hparams["schema"] = schema.as_dict()
        self.net = build_net(self.hparams["net"], schema)
        self.objective.check_suits(self.net)
        self._add_metrics(list(self.ranking.k), self.ranking.validate)

    def _add_metrics(self, ks: list[int], validate_ranking: bool) -> None:
        """RMSE and MAE of validation and test; the top-K rankings (test: per user too)."""
        self.val_rmse = MeanSquaredError(squared=False)
        self.val_mae = MeanAbsoluteError()
        self.test_rmse = MeanSquaredError(squared=False)
        self.test_mae = MeanAbsoluteError()
        n_movies = self.schema.n_movies
        self.test_ranking = TopKRanking(ks, n_movies, per_user=True) if ks else None
        self.val_ranking = TopKRanking(ks, n_movies) if validate_ranking else None

    # ------------------------------------------------------------------ data

    def use_split(self, split: SplitData) -> None:
        """Train, validate and test on `split` (its graph is the message graph); a module
        built without a schema builds its network for the split's, and refuses a
        `selection` metric it does not log (`ConfigError`). A sampled-subgraph loader the
        network cannot encode is refused."""
        if self.net is None:
            self._build(split.schema)
            if self.selection is not None:
                self.selection.check(self.validation_metrics())
        refusal = self.net.subgraph_refusal()
        if split.loader == "neighbor" and refusal:
            raise ConfigError(
                f"data.loader=neighbor encodes sampled subgraphs, which "
                f"{type(self.net).__name__} cannot ({refusal}); use an inductive model "
                "(model=sage with the settings named) or data.loader=full"
            )
        self._split = split
        self._graph = split.graph
        self._protocols = {}

    @property
    def split(self) -> SplitData | None:
        """The split handed over by `use_split` (None before)."""
        return self._split

    def set_graph(self, graph: HeteroData) -> None:
        """Encode `graph` (a training message graph) without a split (serving)."""
        self._graph = graph

    @property
    def graph(self) -> HeteroData:
        if self._graph is None:
            raise RuntimeError("no graph: call use_split() or set_graph(), or fit a datamodule")
        if self._graph[RATES].edge_index.device != self.device:
            self._graph = self._graph.to(self.device)
        return self._graph

    def validation_metrics(self) -> tuple[str, ...]:
        """The `val/*` metric names this module logs every epoch (what `selection` may
        pick)."""
        names: list[str] = []
        if self.net.predicts_ratings:
            names += ["val/rmse", "val/mae"]
        if self.val_ranking is not None:
            names += self.val_ranking.names("val")
        return tuple(names)

    # ------------------------------------------------------------------ prediction

    def clamp(self, rating: torch.Tensor) -> torch.Tensor:
        low, high = self.schema.rating_scale
        return rating.clamp(low, high)

    @torch.no_grad()
    def predict_pairs(self, user: torch.Tensor, movie: torch.Tensor) -> torch.Tensor:
        """Clamped predicted stars for index pairs, (B,), encoding the graph once."""
        embeddings = self.net.encode(self.graph)
        return self.clamp(self.net.decode(embeddings, user, movie).rating)

    # ------------------------------------------------------------------ steps

    def on_fit_start(self) -> None:
        # the net's adjacency and the validation ranking's lookups (seconds to build at
        # ML-25M) are built here rather than in the first epoch, which then costs what
        # later ones do; a sampled-subgraph loader encodes other graphs in training, so
        # the net has nothing to build ahead
        if self._split is None:
            return
        if self._split.loader != "neighbor":
            self.net.prepare(self.graph)
        if self.val_ranking is not None:
            self._protocol("val")
        if self.objective.ranks and self.objective.bpr_exclude_rated:
            self._rated_pairs()

    def on_train_epoch_start(self) -> None:
        self.net.start_epoch(self.current_epoch)

    def training_step(
        self, batch: tuple[torch.Tensor, ...] | HeteroData, batch_idx: int
    ) -> torch.Tensor | None:
        if not self.net.trains_by_gradient:
            return None  # fitted in closed form (`RatingNet.start_epoch`): no step to take
        if isinstance(batch, HeteroData):  # a sampled subgraph (data.loader=neighbor)
            loss = self.subgraph_loss(batch)
            rating = batch[RATES].edge_label
        else:
            user, movie, rating = batch
            loss = self.supervised_loss(user, movie, rating)
        if not torch.isfinite(loss):
            raise MovieRecError(
                f"training diverged: train/loss is {loss.item()} at epoch {self.current_epoch}; "
                f"lower model.lr (now {self.hparams.lr}) or add model.weight_decay"
            )
        self.log(
            "train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(rating)
        )
        return loss

    def supervised_loss(
        self, user: torch.Tensor, movie: torch.Tensor, rating: torch.Tensor
    ) -> torch.Tensor:
        """The objective over B (user, movie, rating) pairs of the full graph, plus the
        net's regularization and the loss terms the net brings (each logged as
        train/<name>)."""
        embeddings = self.net.encode(self.graph)
        regularization = self.net.regularization(user, movie)
        excludes = self.objective.ranks and self.objective.bpr_exclude_rated
        rated = self._rated_pairs() if excludes else None
        loss = self.objective.batch_loss(
            self.net, embeddings, user, movie, rating, self.schema.n_movies, rated
        )
        loss = loss + regularization
        for name, term in self.net.training_terms(self.graph, embeddings, user, movie).items():
            self.log(f"train/{name}", term, on_step=False, on_epoch=True, batch_size=len(user))
            loss = loss + term
        return loss

    def _rated_pairs(self) -> RatedPairs:
        """The message graph's (user, movie) pairs, built once per graph."""
        users, movies = self.graph[RATES].edge_index
        return self._rated.get(
            self.graph, None, lambda: RatedPairs(users, movies, self.schema.n_movies)
        )

    def subgraph_loss(self, batch: HeteroData) -> torch.Tensor:
        """The objective over a sampled subgraph's supervision pairs (local indices)."""
        store = batch[RATES]
        user, movie = store.edge_label_index
        embeddings = self.net.encode(batch)
        loss = self.objective.batch_loss(
            self.net, embeddings, user, movie, store.edge_label, len(embeddings.movie)
        )
        return loss + self.net.regularization(
            batch["user"].node_id[user], batch["movie"].node_id[movie]
        )

    def on_validation_epoch_start(self) -> None:
        # a ranking-only net without ranking validation logs nothing here: no encoding
        # (a whole-graph pass, seconds at 25M ratings, every epoch)
        if self.net.predicts_ratings or self.val_ranking is not None:
            self._eval_embeddings = self.net.encode(self.graph)

    def on_test_epoch_start(self) -> None:
        if self.test_ranking is not None:
            self.test_ranking.reset()  # per-user values of an earlier test
        self._eval_embeddings = self.net.encode(self.graph)

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_rmse, self.val_mae)

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_rmse, self.test_mae)

    def on_validation_epoch_end(self) -> None:
        self._log_ranking("val", self.val_ranking)
        self._eval_embeddings = None

    def on_test_epoch_end(self) -> None:
        self._log_ranking("test", self.test_ranking)
        self._eval_embeddings = None

    def _evaluate(self, batch, stage: str, rmse, mae) -> None:
        if not self.net.predicts_ratings:
            return  # its scores only order movies: RMSE would measure nothing
        user, movie, rating = batch
        assert self._eval_embeddings is not None
        predicted = self.clamp(self.net.decode(self._eval_embeddings, user, movie).rating)
        rmse.update(predicted, rating)
        mae.update(predicted, rating)
        self.log(f"{stage}/rmse", rmse, on_epoch=True, prog_bar=True, batch_size=len(rating))
        self.log(f"{stage}/mae", mae, on_epoch=True, batch_size=len(rating))

    def _protocol(self, stage: str) -> RankingProtocol:
        """`stage`'s ranking lookups, built once (the split is fixed)."""
        assert self._split is not None
        if stage not in self._protocols:
            protocol = RankingProtocol.from_split(self._split, self.ranking.relevant_rating, stage)
            if stage == "val":
                protocol = protocol.sample(self.ranking.val_users)
            self._protocols[stage] = protocol
        return self._protocols[stage]

    def _log_ranking(self, stage: str, ranking: TopKRanking | None) -> None:
        """Top-K metrics of `stage`'s users; each DDP rank ranks its own shard of users."""
        if ranking is None or self._split is None:
            return  # evaluated on bare dataloaders: no split to rank against
        assert self._eval_embeddings is not None
        protocol = self._protocol(stage)
        embeddings = self._eval_embeddings
        evaluate_ranking(
            lambda users: self.net.score_users(embeddings, users),
            protocol.shard(self.global_rank, self.trainer.world_size),
            protocol.exclude,
            protocol.relevant,
            ranking,
            pair_budget=self.net.ranking_block_pairs,
        )
        for name, metric in ranking.items(stage):
            self.log(name, metric)

    # ------------------------------------------------------------------ optimisation

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        if not any(p.requires_grad for p in self.parameters()):
            return None  # a closed-form net (EASE) has nothing to optimise
        optimizer = build_optimizer(
            self._optimizer, _groups(self.net, self), hp.lr, hp.weight_decay
        )
        if self._scheduler is None:
            return optimizer
        plateau = is_plateau(self._scheduler)
        if plateau and self.selection is None:  # a module built for inference needs none
            raise ConfigError("model.scheduler=plateau watches selection.metric: pass selection")
        mode = self.selection.mode if plateau else None  # only the plateau scheduler has one
        scheduler = build_scheduler(self._scheduler, optimizer, self.trainer.max_epochs or 1, mode)
        settings: dict[str, Any] = {"scheduler": scheduler, "interval": "epoch"}
        if plateau:
            settings["monitor"] = self.selection.metric
        return {"optimizer": optimizer, "lr_scheduler": settings}


def _groups(net: RatingNet, module: pl.LightningModule) -> list[dict[str, Any]] | Any:
    """The module's parameters, with those the net exempts from weight decay
    (`RatingNet.no_weight_decay`) in a group of their own at weight_decay 0."""
    exempt = {f"net.{name}" for name in net.no_weight_decay()}
    if not exempt:
        return module.parameters()
    named = list(module.named_parameters())
    return [
        {"params": [p for name, p in named if name not in exempt]},
        {"params": [p for name, p in named if name in exempt], "weight_decay": 0.0},
    ]


def _plain(value: Any) -> Any:
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value
