"""Decoders: turn a (user, movie) pair of node embeddings into a rating.

Every decoder has one call form: node tables z_user (n_users, d), z_movie (n_movies, d)
and index pairs user, movie (B,) → (rating (B,) in stars, logits (B, L) or None).
Taking the tables (not gathered rows) lets a decoder project a table once per call, as
the bilinear softmax decoder does. `build_decoder` picks one by name (`model.net.decoder`).
"""

from __future__ import annotations

import torch
from torch import nn

from movierec.checks import check_choice, check_fraction, check_positive
from movierec.errors import ConfigError
from movierec.models.base import embedding_rows
from movierec.models.pair_dot import pair_dot

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
DECODERS = ("mlp", "dot", "bilinear", "softmax")
DecoderOutput = tuple[torch.Tensor, torch.Tensor | None]


class MlpDecoder(nn.Module):
    """Fully connected regression head on `[z_user ‖ z_movie]` of each pair.

    The output bias starts at the mean training rating so training begins at the
    global-mean baseline.
    """

    def __init__(
        self,
        in_channels: int,
        hidden: list[int],
        mean_rating: float,
        dropout: float = 0.0,
        activation: str = "relu",
        key: str = "model.net.decoder",
    ) -> None:
        super().__init__()
        check_choice(f"{key}_activation", activation, tuple(ACTIVATIONS))
        check_fraction(f"{key}_dropout", dropout)
        layers: list[nn.Module] = []
        width = in_channels
        for size in hidden:
            check_positive(f"{key}_hidden", size)
            layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(width, 1)
        self.mean_rating = mean_rating
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        self.out.reset_parameters()
        nn.init.constant_(self.out.bias, self.mean_rating)

    def forward(self, z_user, z_movie, user, movie) -> DecoderOutput:
        pairs = torch.cat([z_user[user], z_movie[movie]], dim=-1)
        return self.out(self.mlp(pairs)).squeeze(-1), None


class DotDecoder(nn.Module):
    """rating = μ + z_u · z_m (μ the mean training rating)."""

    def __init__(self, mean_rating: float) -> None:
        super().__init__()
        self.mean_rating = mean_rating

    def forward(self, z_user, z_movie, user, movie) -> DecoderOutput:
        return self.mean_rating + pair_dot(z_user, z_movie, user, movie), None


class BilinearDecoder(nn.Module):
    """rating = μ + z_u^T W z_m with one learned (d, d) matrix W (started at 0.1·I, a
    scaled dot product, so training starts near the mean rating)."""

    def __init__(self, channels: int, mean_rating: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, channels))
        self.mean_rating = mean_rating
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.eye_(self.weight)
        self.weight.data.mul_(0.1)

    def forward(self, z_user, z_movie, user, movie) -> DecoderOutput:
        projected = z_user @ self.weight  # (n_users, d): once per call, not per pair
        return self.mean_rating + pair_dot(projected, z_movie, user, movie), None


class BilinearSoftmaxDecoder(nn.Module):
    """GC-MC's decoder: one bilinear form per rating level from shared bases.

    logits_r = z_u^T Q_r z_m with Q_r = Σ_b a_{r,b} P_b (basis sharing);
    rating = Σ_r softmax(logits)_r · level_r.

    The user table is projected by each basis before gathering pairs: O(n_users·d²)
    instead of O(B·d²) per call.
    """

    def __init__(self, channels: int, levels: tuple[float, ...], n_basis: int = 2) -> None:
        super().__init__()
        check_positive("model.net.n_basis", n_basis)
        self.bases = nn.Parameter(torch.empty(n_basis, channels, channels))
        self.coefficients = nn.Linear(n_basis, len(levels), bias=False)
        self.register_buffer("levels", torch.tensor(levels, dtype=torch.float32))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.bases)
        self.coefficients.reset_parameters()

    def forward(self, z_user, z_movie, user, movie) -> DecoderOutput:
        projected = torch.einsum("ni,kij->nkj", z_user, self.bases)  # (n_users, K, d)
        per_basis = (projected[user] * z_movie[movie].unsqueeze(1)).sum(dim=-1)  # (B, K)
        logits = self.coefficients(per_basis)
        rating = (logits.softmax(dim=-1) * self.levels).sum(dim=-1)
        return rating, logits


class PairBias(nn.Module):
    """Learned user and movie offsets in stars, b_u + b_m (B,), started at 0."""

    def __init__(self, n_users: int, n_movies: int) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, 1)
        self.movie = nn.Embedding(n_movies, 1)
        nn.init.zeros_(self.user.weight)
        nn.init.zeros_(self.movie.weight)

    def forward(
        self, user: torch.Tensor, movie: torch.Tensor, new_user_bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """b_u + b_m (B,); users past the user table take their offset from
        `new_user_bias` (k,) (users folded in at request time, `models.fold_in`)."""
        if new_user_bias is None:
            return (embedding_rows(self.user, user) + embedding_rows(self.movie, movie)).squeeze(-1)
        n = self.user.num_embeddings
        known = self.user.weight[user.clamp(max=n - 1), 0]
        user_bias = torch.where(user < n, known, new_user_bias[(user - n).clamp(min=0)])
        return user_bias + embedding_rows(self.movie, movie).squeeze(-1)


def build_decoder(
    kind: str,
    channels: int,
    mean_rating: float,
    levels: tuple[float, ...],
    mlp_hidden: list[int],
    n_basis: int = 2,
) -> nn.Module:
    """The `model.net.decoder` named `kind` for `channels`-wide node embeddings."""
    check_choice("model.net.decoder", kind, DECODERS)
    if kind == "mlp":
        return MlpDecoder(2 * channels, mlp_hidden, mean_rating)
    if kind == "dot":
        return DotDecoder(mean_rating)
    if kind == "bilinear":
        return BilinearDecoder(channels, mean_rating)
    return BilinearSoftmaxDecoder(channels, levels, n_basis)


def decoder_args(kind: str, channels: int, schema, mlp_hidden: list[int], n_basis: int = 2) -> dict:
    """`build_decoder`'s keyword arguments for `schema` (a `GraphSchema`), as plain
    Python values: networks keep them so their scoring head can be rebuilt from a file."""
    return {
        "kind": kind,
        "channels": int(channels),
        "mean_rating": float(schema.mean_rating),
        "levels": tuple(float(level) for level in schema.rating_levels),
        "mlp_hidden": [int(width) for width in mlp_hidden],
        "n_basis": int(n_basis),
    }


def decode_with_bias(
    decoder: nn.Module, bias: PairBias | None, z_user, z_movie, user, movie, new_user_bias=None
) -> DecoderOutput:
    """`decoder`'s (rating, logits) for the pairs, with b_u + b_m added to the rating when
    the family has biases (`model.net.bias`; `new_user_bias`: see `PairBias.forward`)."""
    rating, logits = decoder(z_user, z_movie, user, movie)
    if bias is not None:
        rating = rating + bias(user, movie, new_user_bias)
    return rating, logits


def check_bias(bias: bool, decoder: str) -> None:
    """Refuse `model.net.bias` with the softmax decoder, which predicts no stars to offset."""
    if bias and decoder == "softmax":
        raise ConfigError(
            "model.net.bias=true adds offsets in stars, which the softmax decoder (a "
            "distribution over rating levels) has no place for: use decoder=mlp|dot|bilinear"
        )
