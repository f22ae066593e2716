"""The scoring heads of `models.heads`, evaluated with NumPy from their spec and weights.

Why a second evaluator: importing torch alone takes 2–3 s on a 2-core machine, most of
the recommend command's ≤ 3 s budget, and ranking a known user needs only the encoded
tables and a few matrix products. This module evaluates the three heads a network can
offer (`DotHead`, `BiasedDotHead`, `DecoderHead` over the mlp, dot, bilinear and softmax
decoders, with or without `PairBias`) from the spec and state dict the bundle stores, in
float32 like the network. `tests/test_snapshot.py` checks every family's scores against
the network's own (to float rounding). A head it does not know (`supports` is False: a
plug-in's own head class) gets no scoring tables in its bundle, which is then served by
the network (torch).

Every evaluator has one call form, over gathered rows:
    head(zu, zm, grid)    zu (B, d) user rows, zm movie rows
        grid=True:  zm (M, d), every user × every movie → (B, M)
        grid=False: zm (B, d), row i pairs user row i with movie row i → (B,)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from movierec.errors import DataError

Weights = Mapping[str, np.ndarray]
Evaluator = Callable[[np.ndarray, np.ndarray, bool], np.ndarray]


def _dot(zu: np.ndarray, zm: np.ndarray, grid: bool) -> np.ndarray:
    return zu @ zm.T if grid else np.einsum("bd,bd->b", zu, zm)


def _mlp(weights: Weights, prefix: str) -> Evaluator:
    """`MlpDecoder`: Linear → ReLU per hidden layer, then Linear to one rating (no
    dropout at evaluation). The first layer is split into its user and movie halves so a
    grid never materialises the (B·M, 2d) concatenation."""
    hidden = sorted(
        int(key[len(prefix) + 4 : -7])
        for key in weights
        if key.startswith(f"{prefix}mlp.") and key.endswith(".weight")
    )
    linear = [
        (weights[f"{prefix}mlp.{i}.weight"], weights[f"{prefix}mlp.{i}.bias"]) for i in hidden
    ]
    linear.append((weights[f"{prefix}out.weight"], weights[f"{prefix}out.bias"]))

    def evaluate(zu, zm, grid):
        (first, first_bias), rest = linear[0], linear[1:]
        d = zu.shape[1]
        from_user = zu @ first[:, :d].T  # (B, h)
        from_movie = zm @ first[:, d:].T + first_bias  # (M, h) or (B, h)
        h = from_user[:, None, :] + from_movie[None] if grid else from_user + from_movie
        for weight, bias in rest:
            h = np.maximum(h, 0) @ weight.T + bias
        return h[..., 0]

    return evaluate


def _softmax_levels(weights: Weights, prefix: str) -> Evaluator:
    """`BilinearSoftmaxDecoder`: logits_r = Σ_b a_{r,b} z_u^T P_b z_m; rating = expected
    level under softmax(logits)."""
    bases = weights[f"{prefix}bases"]  # (K, d, d)
    coefficients = weights[f"{prefix}coefficients.weight"]  # (L, K)
    levels = weights[f"{prefix}levels"]  # (L,)

    def evaluate(zu, zm, grid):
        projected = np.einsum("ni,kij->nkj", zu, bases)  # (B, K, d)
        if grid:
            per_basis = np.einsum("bkd,md->bmk", projected, zm)  # (B, M, K)
        else:
            per_basis = np.einsum("bkd,bd->bk", projected, zm)  # (B, K)
        logits = per_basis @ coefficients.T
        logits = logits - logits.max(axis=-1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=-1, keepdims=True)
        return probabilities @ levels

    return evaluate


def _decoder(decoder: dict[str, Any], weights: Weights) -> Evaluator:
    kind, mean = decoder.get("kind"), np.float32(decoder.get("mean_rating", 0.0))
    prefix = "decoder."
    if kind == "mlp":
        return _mlp(weights, prefix)
    if kind == "dot":
        return lambda zu, zm, grid: mean + _dot(zu, zm, grid)
    if kind == "bilinear":
        weight = weights[f"{prefix}weight"]
        return lambda zu, zm, grid: mean + _dot(zu @ weight, zm, grid)
    if kind == "softmax":
        return _softmax_levels(weights, prefix)
    raise DataError(f"unknown decoder kind {kind!r} in the bundle's scoring head")


HEADS = ("DotHead", "BiasedDotHead", "DecoderHead")
DECODERS = ("mlp", "dot", "bilinear", "softmax")


def supports(spec: Mapping[str, Any]) -> bool:
    """Whether `NumpyHead` evaluates the head `spec` describes."""
    if spec.get("head") not in HEADS:
        return False
    return spec["head"] != "DecoderHead" or dict(spec.get("decoder") or {}).get("kind") in DECODERS


class NumpyHead:
    """A head's rating (or ranking score) from node tables, in NumPy.

    Args:
        spec: the head's `spec` (`ScoringHead.spec`).
        weights: its state dict as float32 arrays, by the same keys.
    """

    def __init__(self, spec: Mapping[str, Any], weights: Weights) -> None:
        name = spec.get("head")
        try:
            if name == "DotHead":
                self._pairs: Evaluator = _dot
            elif name == "BiasedDotHead":
                mean = np.float32(weights["mean"])
                self._pairs = lambda zu, zm, grid: (
                    mean + _add(zu[:, -1], zm[:, -1], grid) + _dot(zu[:, :-1], zm[:, :-1], grid)
                )
            elif name == "DecoderHead":
                self._pairs = _decoder(dict(spec["decoder"]), weights)
            else:
                raise DataError(f"unknown scoring head {name!r} in the bundle")
            self._bias = None
            if spec.get("bias"):
                self._bias = (weights["bias.user.weight"][:, 0], weights["bias.movie.weight"][:, 0])
        except KeyError as err:
            raise DataError(f"the bundle's {name} lacks the weight {err.args[0]!r}") from None

    def score_grid(self, z_user: np.ndarray, z_movie: np.ndarray, users: np.ndarray) -> np.ndarray:
        """Scores of every movie for user indices (B,): (B, n_movies) float32."""
        scores = self._pairs(z_user[users], z_movie, True)
        if self._bias is not None:
            scores = scores + _add(self._bias[0][users], self._bias[1], True)
        return scores.astype(np.float32, copy=False)

    def score_pairs(
        self, z_user: np.ndarray, z_movie: np.ndarray, users: np.ndarray, movies: np.ndarray
    ) -> np.ndarray:
        """Scores of the (user, movie) index pairs (B,): (B,) float32."""
        scores = self._pairs(z_user[users], z_movie[movies], False)
        if self._bias is not None:
            scores = scores + self._bias[0][users] + self._bias[1][movies]
        return scores.astype(np.float32, copy=False)


def _add(user_values: np.ndarray, movie_values: np.ndarray, grid: bool) -> np.ndarray:
    """b_u + b_m as (B, M) over the grid, else (B,) pairwise."""
    return user_values[:, None] + movie_values[None, :] if grid else user_values + movie_values
