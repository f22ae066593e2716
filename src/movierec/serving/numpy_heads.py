"""The scoring heads of `models.heads`, evaluated with NumPy from their spec and weights.

Why a second evaluator: importing torch alone takes 2–3 s on a 2-core machine, most of
the recommend command's ≤ 3 s budget, and ranking a known user needs only the encoded
tables and a few matrix products. This module evaluates the three heads a network can
offer (`DotHead`, `BiasedDotHead`, `DecoderHead` over the mlp, dot, bilinear and softmax
decoders, with or without `PairBias` and a ranking output) from the spec and state dict
the bundle stores, in float32 like the network. `tests/test_snapshot.py` checks every
family's scores against the network's own (to float rounding). A head it does not know
(`supports` is False: a plug-in's own head class) gets no scoring tables in its bundle,
which is then served by the network (torch).

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
PREFIX = "decoder."  # `DecoderHead`'s decoder weights in its state dict


def _dot(zu: np.ndarray, zm: np.ndarray, grid: bool) -> np.ndarray:
    return zu @ zm.T if grid else np.einsum("bd,bd->b", zu, zm)


def _mlp(decoder: dict[str, Any], weights: Weights) -> Evaluator:
    """`MlpDecoder`: Linear → ReLU per hidden layer, then Linear to one rating (no
    dropout at evaluation). The first layer is split into its user and movie halves so a
    grid never materialises the (B·M, 2d) concatenation."""
    layers = sorted(  # the Linear layers' positions in `decoder.mlp` (ReLUs between)
        int(key.removeprefix(f"{PREFIX}mlp.").removesuffix(".weight"))
        for key in weights
        if key.startswith(f"{PREFIX}mlp.") and key.endswith(".weight")
    )
    linear = [
        (weights[f"{PREFIX}mlp.{i}.weight"], weights[f"{PREFIX}mlp.{i}.bias"]) for i in layers
    ]
    linear.append((weights[f"{PREFIX}out.weight"], weights[f"{PREFIX}out.bias"]))

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


def _softmax_levels(decoder: dict[str, Any], weights: Weights) -> Evaluator:
    """`BilinearSoftmaxDecoder`: logits_r = Σ_b a_{r,b} z_u^T P_b z_m; rating = expected
    level under softmax(logits)."""
    bases = weights[f"{PREFIX}bases"]  # (K, d, d)
    coefficients = weights[f"{PREFIX}coefficients.weight"]  # (L, K)
    levels = weights[f"{PREFIX}levels"]  # (L,)

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


def _dot_decoder(decoder: dict[str, Any], weights: Weights) -> Evaluator:
    """`DotDecoder`: μ + z_u · z_m."""
    mean = np.float32(decoder.get("mean_rating", 0.0))
    return lambda zu, zm, grid: mean + _dot(zu, zm, grid)


def _bilinear(decoder: dict[str, Any], weights: Weights) -> Evaluator:
    """`BilinearDecoder`: μ + z_u^T W z_m."""
    mean, weight = np.float32(decoder.get("mean_rating", 0.0)), weights[f"{PREFIX}weight"]
    return lambda zu, zm, grid: mean + _dot(zu @ weight, zm, grid)


#: `build_decoder`'s kinds → builders of their evaluators from (decoder spec, weights)
DECODERS: dict[str, Callable[[dict[str, Any], Weights], Evaluator]] = {
    "mlp": _mlp,
    "dot": _dot_decoder,
    "bilinear": _bilinear,
    "softmax": _softmax_levels,
}


def _biased_dot(spec: Mapping[str, Any], weights: Weights) -> Evaluator:
    """`BiasedDotHead`: μ + b_u + b_m + p_u · q_m on tables [p ‖ b]."""
    mean = np.float32(weights["mean"])
    return lambda zu, zm, grid: (
        mean + _add(zu[:, -1], zm[:, -1], grid) + _dot(zu[:, :-1], zm[:, :-1], grid)
    )


def _decoder_head(spec: Mapping[str, Any], weights: Weights) -> Evaluator:
    """`DecoderHead`: its decoder (the bias, if any, is added by `NumpyHead`)."""
    decoder = dict(spec["decoder"])
    return DECODERS[decoder.get("kind")](decoder, weights)


#: `models.heads` classes → builders of their evaluators from (spec, weights)
HEADS: dict[str, Callable[[Mapping[str, Any], Weights], Evaluator]] = {
    "DotHead": lambda spec, weights: _dot,
    "BiasedDotHead": _biased_dot,
    "DecoderHead": _decoder_head,
}


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
        if not supports(spec):
            raise DataError(f"unknown scoring head {name!r} (spec {dict(spec)}) in the bundle")
        try:
            self._pairs: Evaluator = HEADS[name](spec, weights)
            self._bias = None
            if spec.get("bias"):
                self._bias = (weights["bias.user.weight"][:, 0], weights["bias.movie.weight"][:, 0])
            self._ranking = None
            if spec.get("ranking"):  # a second output the network ranks by
                self._ranking = tuple(
                    weights[f"ranking.{name}"]
                    for name in ("user.weight", "movie.weight", "movie_offset")
                )
        except KeyError as err:
            raise DataError(f"the bundle's {name} lacks the weight {err.args[0]!r}") from None

    @property
    def ranks_by_score(self) -> bool:
        """Whether the head ranks by a score of its own, distinct from its rating."""
        return self._ranking is not None

    def score_grid(self, z_user: np.ndarray, z_movie: np.ndarray, users: np.ndarray) -> np.ndarray:
        """Scores the network ranks by, of every movie for user indices (B,): (B, n_movies)
        float32: the ranking output's (z_u A) · (z_m B) + c_m where the head has one
        (`models.ranking_output`), else what `score_pairs` gives."""
        if self._ranking is not None:
            to_user, to_movie, offset = self._ranking
            scores = (z_user[users] @ to_user.T) @ (z_movie @ to_movie.T).T + offset
            return scores.astype(np.float32, copy=False)
        scores = self._pairs(z_user[users], z_movie, True)
        if self._bias is not None:
            scores = scores + _add(self._bias[0][users], self._bias[1], True)
        return scores.astype(np.float32, copy=False)

    def score_pairs(
        self, z_user: np.ndarray, z_movie: np.ndarray, users: np.ndarray, movies: np.ndarray
    ) -> np.ndarray:
        """Rating (a ranking-only head: score) of the (user, movie) index pairs (B,): (B,)
        float32."""
        scores = self._pairs(z_user[users], z_movie[movies], False)
        if self._bias is not None:
            scores = scores + self._bias[0][users] + self._bias[1][movies]
        return scores.astype(np.float32, copy=False)


def _add(user_values: np.ndarray, movie_values: np.ndarray, grid: bool) -> np.ndarray:
    """b_u + b_m as (B, M) over the grid, else (B,) pairwise."""
    return user_values[:, None] + movie_values[None, :] if grid else user_values + movie_values
