"""`SimGclNet` and `XSimGclNet`: LightGCN propagation with noise-perturbed views and an
InfoNCE term (Yu et al., SIGIR 2022 "Are graph augmentations necessary?" and TKDE 2023
"XSimGCL: towards extremely simple graph contrastive learning").

Both propagate like LightGCN (`LightGcnNet`, PyG's `LGConv` on the per-edge path), but
each propagated layer k = 1..K of a perturbed view gets uniform noise of norm ε along its
own sign,

    E'^(k) = Â E'^(k-1) + Δ^(k),    Δ = ε · normalize(U) ⊙ sign(Â E'^(k-1)),  U ~ U(0, 1),

and the embedding is the mean of layers 1..K (not layer 0, as in the papers' code). The
model brings its own loss term (`training_terms`): over the batch's distinct users and
movies, λ_cl · (InfoNCE(view₁ users, view₂ users) + InfoNCE(view₁ movies, view₂ movies)),

    InfoNCE(a, b) = mean_i −log softmax_j(cos(a_i, b_j) / τ)_i.

SimGCL ranks with a clean propagation and contrasts two extra perturbed ones (three per
step). XSimGCL trains on one perturbed propagation and contrasts its final embedding
with its own layer l* (`cl_layer`), so a step costs what LightGCN's does. Evaluation
and serving use the clean propagation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch_geometric.data import HeteroData

from movierec.checks import check_positive
from movierec.data.graph import GraphSchema
from movierec.errors import ConfigError
from movierec.models.adjacency import product
from movierec.models.base import NodeEmbeddings
from movierec.models.lightgcn import LightGcnNet


def perturb(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x + ε · normalize(U) ⊙ sign(x), U uniform in [0, 1): each row moves by a vector of
    norm ε that stays in x's orthant (no element changes sign)."""
    noise = F.normalize(torch.rand_like(x), dim=-1)
    return x + eps * noise * torch.sign(x)


def info_nce(view1: torch.Tensor, view2: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of B paired rows (B, d): row i of `view1` against every row of `view2`,
    by cosine similarity over `temperature`; the positive is row i (mean over i)."""
    # τ divides the (B, d) rows, not the (B, B) logits: the same values, a fifth less time
    # for the movies' InfoNCE at ml-100k (1,682 rows)
    a, b = F.normalize(view1, dim=-1) / temperature, F.normalize(view2, dim=-1)
    return F.cross_entropy(a @ b.T, torch.arange(len(a), device=a.device))


@dataclass
class ContrastiveEmbeddings(NodeEmbeddings):
    """A perturbed propagation's final tables plus its layer-l* tables (XSimGCL's view)."""

    cl_user: torch.Tensor | None = None
    cl_movie: torch.Tensor | None = None


class SimGclNet(LightGcnNet):
    """SimGCL ranking model.

    Args:
        schema, dim, num_layers, reg, message_passing: as `LightGcnNet`.
        eps: noise norm ε added to every propagated layer of a perturbed view.
        cl_weight: weight λ_cl of the InfoNCE term.
        temperature: τ of the InfoNCE term.
    """

    def __init__(
        self,
        schema: GraphSchema,
        dim: int = 64,
        num_layers: int = 2,
        reg: float = 1e-4,
        eps: float = 0.02,
        cl_weight: float = 0.02,
        temperature: float = 0.15,
        message_passing: str = "auto",
    ) -> None:
        super().__init__(schema, dim, num_layers, reg, message_passing)
        for key, value in (("eps", eps), ("cl_weight", cl_weight)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"model.net.{key}={value!r}: expected a number ≥ 0")
        check_positive("model.net.temperature", temperature)
        self.eps, self.cl_weight, self.temperature = float(eps), float(cl_weight), temperature

    def encode(self, graph: HeteroData) -> NodeEmbeddings:
        """The clean propagation: mean of layers 1..K."""
        return self.propagate(graph, eps=0.0)

    def propagate(
        self, graph: HeteroData, eps: float, cl_layer: int | None = None
    ) -> ContrastiveEmbeddings:
        """Mean of layers 1..K with noise ε on each (0: clean), and layer `cl_layer`'s
        tables when asked."""
        layers = self.layer_outputs(graph, eps)
        user = torch.stack([u for u, _ in layers[1:]]).mean(0)
        movie = torch.stack([m for _, m in layers[1:]]).mean(0)
        if cl_layer is None:
            return ContrastiveEmbeddings(user, movie)
        return ContrastiveEmbeddings(user, movie, *layers[cl_layer])

    def layer_outputs(self, graph: HeteroData, eps: float) -> list[tuple[torch.Tensor, ...]]:
        """[(users, movies) of E^(0), …, E^(K)], each propagated layer perturbed by ε."""
        weight = self.lightgcn.embedding.weight
        n_users = self.schema.n_users
        x_user, x_movie = weight[:n_users], weight[n_users:]
        outputs = [(x_user, x_movie)]
        with self.message_graph.passing(weight.device) as sparse:
            adjacency = self.message_graph.get(graph, sparse, weight.dtype)
            for conv in self.lightgcn.convs:
                if sparse:
                    to_user, to_movie = adjacency
                    # both from the previous layer's tables
                    new_user = product(to_user, x_movie, "sum")
                    x_movie, x_user = product(to_movie, x_user, "sum"), new_user
                else:
                    z = conv(torch.cat([x_user, x_movie]), *adjacency)
                    x_user, x_movie = z[:n_users], z[n_users:]
                if eps:
                    x_user, x_movie = perturb(x_user, eps), perturb(x_movie, eps)
                outputs.append((x_user, x_movie))
        return outputs

    def training_terms(self, graph, embeddings, user, movie) -> dict[str, torch.Tensor]:
        """{"cl": λ_cl · InfoNCE between two perturbed views} over the batch's distinct
        users and movies."""
        if not self.cl_weight:
            return {}
        first, second = self.propagate(graph, self.eps), self.propagate(graph, self.eps)
        views = (first.user, first.movie, second.user, second.movie)
        return {"cl": self._contrast(*views, user, movie)}

    def _contrast(self, user1, movie1, user2, movie2, user, movie) -> torch.Tensor:
        users, movies = torch.unique(user), torch.unique(movie)
        return self.cl_weight * (
            info_nce(user1[users], user2[users], self.temperature)
            + info_nce(movie1[movies], movie2[movies], self.temperature)
        )


class XSimGclNet(SimGclNet):
    """XSimGCL ranking model: SimGCL's arguments plus `cl_layer`, the layer l* (1..K)
    whose perturbed tables are contrasted with the final ones."""

    def __init__(
        self,
        schema: GraphSchema,
        dim: int = 64,
        num_layers: int = 2,
        reg: float = 1e-4,
        eps: float = 0.05,
        cl_weight: float = 0.02,
        temperature: float = 0.15,
        cl_layer: int = 1,
        message_passing: str = "auto",
    ) -> None:
        super().__init__(schema, dim, num_layers, reg, eps, cl_weight, temperature, message_passing)
        if not isinstance(cl_layer, int) or not 1 <= cl_layer <= num_layers:
            raise ConfigError(
                f"model.net.cl_layer={cl_layer!r}: expected a layer in 1..{num_layers} "
                "(model.net.num_layers)"
            )
        self.cl_layer = cl_layer

    def encode(self, graph: HeteroData) -> NodeEmbeddings:
        """In training, one perturbed propagation (with its layer-l* tables); otherwise
        the clean one."""
        if self.training:
            return self.propagate(graph, self.eps, self.cl_layer)
        return self.propagate(graph, eps=0.0)

    def training_terms(self, graph, embeddings, user, movie) -> dict[str, torch.Tensor]:
        """{"cl": λ_cl · InfoNCE(final, layer l*)} of this step's perturbed propagation."""
        if not self.cl_weight or not isinstance(embeddings, ContrastiveEmbeddings):
            return {}
        final_user, final_movie = embeddings.user, embeddings.movie
        cl_user, cl_movie = embeddings.cl_user, embeddings.cl_movie
        return {"cl": self._contrast(final_user, final_movie, cl_user, cl_movie, user, movie)}
