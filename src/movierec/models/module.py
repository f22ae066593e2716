"""`RatingPredictor`: the one LightningModule that trains any `RatingNet` to predict ratings.

It owns only training logic: the loss, optimizer and scheduler, torchmetrics RMSE/MAE
(synced across DDP ranks) in stars, and at test time the top-K ranking metrics of
`movierec.ranking` (Precision/Recall/NDCG/HitRate@K; protocol in `ranking.protocol`).
The network is rebuilt from its config and the data schema stored in the checkpoint,
so `RatingPredictor.load_from_checkpoint(path)` needs no datamodule.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch.utils.checkpoint import checkpoint
from torch_geometric.data import HeteroData
from torchmetrics import MeanAbsoluteError, MeanSquaredError

from movierec.data.graph import RATES, GraphSchema
from movierec.errors import ConfigError, MovieRecError
from movierec.models.base import NodeEmbeddings, RatingNet, RatingScores, check_choice
from movierec.ranking.metrics import TopKRanking, metric_name
from movierec.ranking.protocol import RELEVANT_RATING, RankingProtocol
from movierec.ranking.scoring import evaluate_ranking, score_block

LOSSES = ("mse", "huber", "l1", "cross_entropy")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "cosine", "plateau", "step")


class RatingPredictor(pl.LightningModule):
    """Trains `net` on (user, movie, rating) batches over the datamodule's message graph.

    Args:
        net: config of the network (`_target_` + arguments); built with `schema=`.
        schema: `GraphSchema.as_dict()` of the training data.
        loss: mse | huber | l1 | cross_entropy (classification over rating levels).
        huber_delta: Huber loss threshold in stars.
        optimizer: adam | adamw | sgd.
        lr: learning rate (> 0).
        weight_decay: L2 / decoupled weight decay (≥ 0).
        scheduler: none | cosine (over max_epochs) | plateau (on val RMSE) | step.
        scheduler_kwargs: extra arguments of the scheduler (e.g. factor, patience, step_size).
        decode_chunk_size: training pairs decoded per chunk (0 = the whole batch at once).
            Each chunk's decoder activations are recomputed in backward instead of kept
            (activation checkpointing), so a full batch of 20M ratings needs the memory of
            one chunk; loss and gradients are the same as unchunked.
        bpr_weight: weight λ of a BPR ranking term added to the rating loss (0 = off):
            for every training pair (u, m) with rating ≥ `bpr_positive_rating`, one movie j
            drawn uniformly from all movies each step (now and then a rated one, as in
            BPR's usual sampling) is pushed below it,
            λ · mean(−log σ(r̂(u, m) − r̂(u, j))) over the batch's pairs (non-positive pairs
            count 0). Rating loss alone ranks rarely rated, well-rated movies first; the
            term teaches the same predicted rating which movies a user would pick at all,
            which is what top-K ranking over unrated movies asks (README, Ranking objective).
        bpr_positive_rating: the ranking term's positives are training ratings ≥ this many
            stars; None = every rated movie.
        ranking_k: list length K of the test ranking metrics (`test/ndcg_at_<K>`, …);
            0 turns them off (ranking scores every test user against every movie).
        relevant_rating: a test rating ≥ this many stars makes a movie relevant.
        validate_ranking: also log the ranking metrics of the validation split every epoch
            (`val/ndcg_at_<K>`, …; candidates exclude the train split), so checkpointing
            and early stopping can select on them.
    """

    def __init__(
        self,
        net: dict | DictConfig,
        schema: dict,
        loss: str = "mse",
        huber_delta: float = 1.0,
        optimizer: str = "adam",
        lr: float = 0.01,
        weight_decay: float = 0.0,
        scheduler: str = "none",
        scheduler_kwargs: dict | None = None,
        decode_chunk_size: int = 0,
        bpr_weight: float = 0.0,
        bpr_positive_rating: float | None = None,
        ranking_k: int = 10,
        relevant_rating: float = RELEVANT_RATING,
        validate_ranking: bool = False,
    ) -> None:
        super().__init__()
        # Hydra hands over DictConfigs; checkpoints must hold plain containers so they
        # load with torch.load(weights_only=True).
        net_cfg = _plain(net)
        schema = _plain(schema)
        scheduler_kwargs = _plain(scheduler_kwargs or {})
        self.save_hyperparameters(
            {
                "net": net_cfg,
                "schema": schema,
                "loss": loss,
                "huber_delta": huber_delta,
                "optimizer": optimizer,
                "lr": lr,
                "weight_decay": weight_decay,
                "scheduler": scheduler,
                "scheduler_kwargs": scheduler_kwargs,
                "decode_chunk_size": decode_chunk_size,
                "bpr_weight": bpr_weight,
                "bpr_positive_rating": bpr_positive_rating,
                "ranking_k": ranking_k,
                "relevant_rating": relevant_rating,
                "validate_ranking": validate_ranking,
            },
            logger=False,  # the tracking layer logs the whole resolved config instead
        )
        check_choice("model.loss", loss, LOSSES)
        check_choice("model.optimizer", optimizer, OPTIMIZERS)
        check_choice("model.scheduler", scheduler, SCHEDULERS)
        if not isinstance(lr, (int, float)) or lr <= 0:
            raise ConfigError(f"model.lr={lr!r}: expected a positive learning rate")
        if not isinstance(weight_decay, (int, float)) or weight_decay < 0:
            raise ConfigError(f"model.weight_decay={weight_decay!r}: expected ≥ 0")
        if not isinstance(decode_chunk_size, int) or decode_chunk_size < 0:
            raise ConfigError(
                f"model.decode_chunk_size={decode_chunk_size!r}: expected an integer ≥ 0 "
                "(0 = decode the whole batch at once)"
            )
        if not isinstance(bpr_weight, (int, float)) or bpr_weight < 0:
            raise ConfigError(f"model.bpr_weight={bpr_weight!r}: expected ≥ 0 (0 = off)")
        if bpr_positive_rating is not None and not isinstance(bpr_positive_rating, (int, float)):
            raise ConfigError(
                f"model.bpr_positive_rating={bpr_positive_rating!r}: expected a rating in stars "
                "or null (every rated movie is a positive)"
            )
        if not isinstance(huber_delta, (int, float)) or huber_delta <= 0:
            raise ConfigError(f"model.huber_delta={huber_delta!r}: expected > 0")
        if not isinstance(ranking_k, int) or isinstance(ranking_k, bool) or ranking_k < 0:
            raise ConfigError(f"ranking.k={ranking_k!r}: expected an integer ≥ 1 (0 = off)")
        self.schema = GraphSchema(
            **{
                **schema,
                "rating_scale": tuple(schema["rating_scale"]),
                "rating_levels": tuple(schema["rating_levels"]),
            }
        )
        self.net: RatingNet = _build_net(net_cfg, self.schema)
        if loss not in self.net.supported_losses:
            raise ConfigError(
                f"model.loss={loss!r} does not suit {type(self.net).__name__}; expected one of "
                f"{', '.join(self.net.supported_losses)}"
            )
        self.val_rmse = MeanSquaredError(squared=False)
        self.val_mae = MeanAbsoluteError()
        self.test_rmse = MeanSquaredError(squared=False)
        self.test_mae = MeanAbsoluteError()
        self.test_ranking = TopKRanking(ranking_k) if ranking_k else None
        if validate_ranking and not ranking_k:
            raise ConfigError("ranking.validate=true needs ranking.k ≥ 1 (it is 0: off)")
        self.val_ranking = TopKRanking(ranking_k) if validate_ranking else None
        self._protocols: dict[str, RankingProtocol] = {}
        self._graph: HeteroData | None = None
        self._eval_embeddings: NodeEmbeddings | None = None

    # ------------------------------------------------------------------ graph

    def set_graph(self, graph: HeteroData) -> None:
        """Use `graph` (the training message graph) for encoding."""
        self._graph = graph

    @property
    def graph(self) -> HeteroData:
        if self._graph is None:
            datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
            if datamodule is None or datamodule.graph is None:
                raise RuntimeError("no graph: call set_graph() or train with a datamodule")
            self._graph = datamodule.graph
        if self._graph[("user", "rates", "movie")].edge_index.device != self.device:
            self._graph = self._graph.to(self.device)
        return self._graph

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

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if getattr(datamodule, "loader", "full") == "neighbor" and not self.net.inductive:
            raise ConfigError(
                f"data.loader=neighbor encodes sampled subgraphs, which "
                f"{type(self.net).__name__} cannot (it is transductive); use model=sage or "
                "data.loader=full"
            )

    def training_step(
        self, batch: tuple[torch.Tensor, ...] | HeteroData, batch_idx: int
    ) -> torch.Tensor:
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
        """Mean loss over B (user, movie, rating) pairs plus the net's regularization:
        the graph is encoded once, the pairs are decoded in `decode_chunk_size` chunks."""
        embeddings = self.net.encode(self.graph)
        chunk = self.hparams.get("decode_chunk_size", 0)
        regularization = self.net.regularization(user, movie)
        negative = self._negatives(movie, self.schema.n_movies)
        if chunk <= 0 or len(rating) <= chunk:
            loss = self._pair_loss(embeddings.user, embeddings.movie, user, movie, rating, negative)
            return loss + regularization
        total = torch.zeros((), device=rating.device)
        for start in range(0, len(rating), chunk):
            part = slice(start, start + chunk)
            mean = checkpoint(
                self._pair_loss, embeddings.user, embeddings.movie, user[part], movie[part],
                rating[part], None if negative is None else negative[part], use_reentrant=False,
            )  # fmt: skip
            total = total + mean * (len(rating[part]) / len(rating))
        return total + regularization

    def subgraph_loss(self, batch: HeteroData) -> torch.Tensor:
        """Mean loss over a sampled subgraph's supervision pairs (local node indices)."""
        store = batch[RATES]
        user, movie = store.edge_label_index
        embeddings = self.net.encode(batch)
        # negatives come from the subgraph's own movies: the encoder saw only those
        negative = self._negatives(movie, len(embeddings.movie))
        loss = self._pair_loss(
            embeddings.user, embeddings.movie, user, movie, store.edge_label, negative
        )
        return loss + self.net.regularization(
            batch["user"].node_id[user], batch["movie"].node_id[movie]
        )

    def _negatives(self, movie: torch.Tensor, n_movies: int) -> torch.Tensor | None:
        """One uniformly drawn movie index per pair, (B,), or None when BPR is off."""
        if not self.hparams.get("bpr_weight"):
            return None
        return torch.randint(n_movies, movie.shape, device=movie.device)

    def _pair_loss(self, z_user, z_movie, user, movie, rating, negative=None) -> torch.Tensor:
        """Rating loss of B pairs, plus the BPR term against `negative` movies (B,) if given.

        The BPR term is a mean over all B pairs (pairs below `bpr_positive_rating` add 0),
        so chunked decoding sums to exactly the unchunked loss."""
        embeddings = NodeEmbeddings(z_user, z_movie)
        scores = self.net.decode(embeddings, user, movie)
        loss = self._loss(scores, rating)
        if negative is None:
            return loss
        negative_rating = self.net.decode(embeddings, user, negative).rating
        log_odds = F.logsigmoid(scores.rating - negative_rating)
        threshold = self.hparams.get("bpr_positive_rating")
        if threshold is not None:
            log_odds = log_odds * (rating >= threshold)
        return loss - self.hparams.bpr_weight * log_odds.mean()

    def on_validation_epoch_start(self) -> None:
        self._eval_embeddings = self.net.encode(self.graph)

    def on_test_epoch_start(self) -> None:
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
        user, movie, rating = batch
        assert self._eval_embeddings is not None
        predicted = self.clamp(self.net.decode(self._eval_embeddings, user, movie).rating)
        rmse.update(predicted, rating)
        mae.update(predicted, rating)
        self.log(f"{stage}/rmse", rmse, on_epoch=True, prog_bar=True, batch_size=len(rating))
        self.log(f"{stage}/mae", mae, on_epoch=True, batch_size=len(rating))

    def _log_ranking(self, stage: str, ranking: TopKRanking | None) -> None:
        """Top-K metrics of `stage`'s users; each DDP rank ranks its own shard of users."""
        if ranking is None:
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or getattr(datamodule, "data", None) is None:
            return  # evaluated on bare dataloaders: no split to rank against
        assert self._eval_embeddings is not None
        if stage not in self._protocols:  # the split is fixed: build its lookups once
            self._protocols[stage] = RankingProtocol.from_datamodule(
                datamodule, self.hparams.relevant_rating, stage
            )
        protocol = self._protocols[stage]
        embeddings = self._eval_embeddings
        evaluate_ranking(
            lambda users: score_block(self.net, embeddings, users),
            protocol.shard(self.global_rank, self.trainer.world_size),
            protocol.exclude,
            protocol.relevant,
            ranking,
        )
        for name, metric in ranking.means.items():
            self.log(metric_name(name, ranking.k, stage), metric)

    def _loss(self, scores: RatingScores, rating: torch.Tensor) -> torch.Tensor:
        loss = self.hparams.loss
        if loss == "cross_entropy":
            if scores.logits is None:
                raise MovieRecError("model.loss=cross_entropy needs a classification decoder")
            return F.cross_entropy(scores.logits, self.net.rating_class(rating))
        if loss == "huber":
            return F.huber_loss(scores.rating, rating, delta=self.hparams.huber_delta)
        if loss == "l1":
            return F.l1_loss(scores.rating, rating)
        return F.mse_loss(scores.rating, rating)

    # ------------------------------------------------------------------ optimisation

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        params = self.parameters()
        if hp.optimizer == "adam":
            optimizer = torch.optim.Adam(params, lr=hp.lr, weight_decay=hp.weight_decay)
        elif hp.optimizer == "adamw":
            optimizer = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
        else:
            optimizer = torch.optim.SGD(
                params, lr=hp.lr, weight_decay=hp.weight_decay, momentum=0.9
            )
        kwargs = dict(hp.scheduler_kwargs)
        if hp.scheduler == "none":
            return optimizer
        if hp.scheduler == "cosine":
            t_max = kwargs.pop("T_max", None) or max(1, self.trainer.max_epochs or 1)
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=t_max, **kwargs)
        elif hp.scheduler == "step":
            kwargs.setdefault("step_size", 50)
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, **kwargs)
        else:
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", **kwargs)
            return {
                "optimizer": optimizer,
                "lr_scheduler": {
                    "scheduler": scheduler,
                    "monitor": "val/rmse",
                    "interval": "epoch",
                },
            }
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }


def _plain(value: Any) -> Any:
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _build_net(net_cfg: dict, schema: GraphSchema) -> RatingNet:
    from hydra.errors import InstantiationException

    try:
        net = instantiate(net_cfg, schema=schema)
    except InstantiationException as err:
        if isinstance(err.__cause__, MovieRecError):
            raise err.__cause__ from None
        if isinstance(err.__cause__, TypeError):
            raise ConfigError(f"model.net: {err.__cause__}") from None
        raise
    if not isinstance(net, RatingNet):
        raise ConfigError(f"model.net._target_ must build a RatingNet, got {type(net).__name__}")
    return net
