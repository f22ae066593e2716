"""Decoders: turn a (user, movie) pair of embeddings into a rating."""

from __future__ import annotations

import torch
from torch import nn

from movierec.models.base import check_choice, check_fraction, check_positive

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class MlpDecoder(nn.Module):
    """Fully connected regression head on `[z_user ‖ z_movie]`.

    Shapes: z_user (B, d_user), z_movie (B, d_movie) → rating (B,) in stars. The output bias
    starts at the mean training rating so training begins at the global-mean baseline.
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

    def forward(self, z_user: torch.Tensor, z_movie: torch.Tensor) -> torch.Tensor:
        return self.out(self.mlp(torch.cat([z_user, z_movie], dim=-1))).squeeze(-1)


class BilinearSoftmaxDecoder(nn.Module):
    """GC-MC's decoder: one bilinear form per rating level from shared bases.

    logits_r = z_u^T Q_r z_m with Q_r = Σ_b a_{r,b} P_b (basis sharing);
    rating = Σ_r softmax(logits)_r · level_r.

    Shapes: node tables z_user (n_users, d), z_movie (n_movies, d) and index pairs
    user, movie (B,) → rating (B,), logits (B, L). The user table is projected by each
    basis before gathering pairs: O(n_users·d²) instead of O(B·d²) per call.
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

    def forward(
        self,
        z_user: torch.Tensor,
        z_movie: torch.Tensor,
        user: torch.Tensor,
        movie: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        projected = torch.einsum("ni,kij->nkj", z_user, self.bases)  # (n_users, K, d)
        per_basis = (projected[user] * z_movie[movie].unsqueeze(1)).sum(dim=-1)  # (B, K)
        logits = self.coefficients(per_basis)
        rating = (logits.softmax(dim=-1) * self.levels).sum(dim=-1)
        return rating, logits
