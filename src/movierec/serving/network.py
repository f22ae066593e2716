"""`ServedNetwork`: a trained network for answering requests, loaded without Lightning.

A bundle's checkpoint holds the network's config and data schema (`hyper_parameters`) and
its weights (`state_dict`, under `net.`). Serving needs only what `RatingPredictor`
offers for inference — `net`, `schema` and `graph` — so this loads exactly that,
without importing the training stack (pytorch_lightning, torchmetrics, the objective),
which would cost the recommend command and every server worker seconds at start.

    served = ServedNetwork.from_checkpoint("bundle/model.ckpt", graph_tensors)
    served.net.score_users(embeddings, users)
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from movierec.data.graph import GraphSchema, graph_from_tensors
from movierec.errors import DataError
from movierec.models.base import RatingNet, build_net
from movierec.training.checkpoints import read_checkpoint

if TYPE_CHECKING:
    from torch_geometric.data import HeteroData

NET_PREFIX = "net."


class ServedNetwork:
    """The network in eval mode, its schema, and its training message graph.

    Args:
        net: the trained network.
        schema: the data schema it was built for.
        tensors: the message graph as `graph_tensors` (the `HeteroData` is built from
            them only when something asks for `graph`, e.g. encoding or a new user).
    """

    def __init__(
        self, net: RatingNet, schema: GraphSchema, tensors: dict[str, torch.Tensor]
    ) -> None:
        self.net = net.eval()
        self.schema = schema
        self.tensors = tensors

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, tensors: dict[str, torch.Tensor], key: str = "bundle"
    ) -> ServedNetwork:
        """The network saved at `path` (a `RatingPredictor` checkpoint), on CPU."""
        payload = read_checkpoint(path, key)
        hparams = payload.get("hyper_parameters") or {}
        if "net" not in hparams or "schema" not in hparams:
            raise DataError(
                f"{key}={path}: the checkpoint lacks the network config or data schema "
                "(hyper_parameters net, schema); it was not written by this project's training"
            )
        schema = GraphSchema.from_dict(hparams["schema"])
        net = build_net(hparams["net"], schema)
        weights = {
            name.removeprefix(NET_PREFIX): value
            for name, value in payload["state_dict"].items()
            if name.startswith(NET_PREFIX)
        }
        try:
            net.load_state_dict(weights)
        except RuntimeError as err:
            reason = " ".join(str(err).split())[:200]
            raise DataError(
                f"{key}={path}: the weights do not fit the network its config builds ({reason})"
            ) from None
        return cls(net, schema, tensors)

    @cached_property
    def graph(self) -> HeteroData:
        return graph_from_tensors(self.tensors)

    def eval(self) -> ServedNetwork:
        self.net.eval()
        return self
