"""The NumPy scoring heads (`serving.numpy_heads`) are held against the torch spec: every
decoder `models.decoders.DECODERS` names and every `models.heads` head class has a NumPy
twin, and each twin scores random tables as its torch head does (a decoder added on the
torch side alone fails here)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from movierec.models import heads
from movierec.models.decoders import DECODERS
from movierec.serving.numpy_heads import NumpyHead, supports

N_USERS, N_MOVIES, WIDTH = 5, 7, 6
DECODER = {"channels": WIDTH, "mean_rating": 3.5, "levels": (1.0, 2.0, 3.0, 4.0, 5.0),
           "mlp_hidden": [4], "n_basis": 2}  # fmt: skip


def _torch_heads():
    """One head per decoder kind (with offsets where the kind allows them, and a ranking
    output on one), and the heads without a decoder."""
    made = []
    for kind in DECODERS:
        bias = None if kind == "softmax" else [N_USERS, N_MOVIES]
        made.append(heads.DecoderHead({"kind": kind, **DECODER}, bias))
    ranking = {"width": WIDTH, "dim": 3, "n_movies": N_MOVIES}
    made.append(heads.DecoderHead({"kind": "dot", **DECODER}, None, ranking))
    made += [heads.DotHead(), heads.BiasedDotHead(mean=3.5)]
    return made


def test_every_torch_head_and_decoder_has_a_numpy_twin():
    classes = [
        cls for _, cls in inspect.getmembers(heads, inspect.isclass)
        if issubclass(cls, heads.ScoringHead) and cls is not heads.ScoringHead
    ]  # fmt: skip
    built = {type(head).__name__ for head in _torch_heads()}
    assert {cls.__name__ for cls in classes} <= built, "a head class this test does not build"
    for head in _torch_heads():
        assert supports(head.spec), f"no NumPy twin for {head.spec}"


@pytest.mark.parametrize("index", range(len(DECODERS) + 3))
def test_each_numpy_twin_scores_as_its_torch_head(index):
    torch.manual_seed(index)
    head = _torch_heads()[index]
    with torch.no_grad():
        for parameter in head.parameters():  # spread every weight, offsets included
            parameter.add_(torch.randn_like(parameter) * 0.3)
    z_user, z_movie = torch.randn(N_USERS, WIDTH + 1), torch.randn(N_MOVIES, WIDTH + 1)
    if "DecoderHead" in head.spec["head"]:
        z_user, z_movie = z_user[:, :WIDTH], z_movie[:, :WIDTH]
    weights = {k: v.numpy() for k, v in head.state_dict().items()}
    twin = NumpyHead(head.spec, weights)
    users = torch.arange(N_USERS)
    expected = head.score_users(z_user, z_movie, users).numpy()
    got = twin.score_grid(z_user.numpy(), z_movie.numpy(), users.numpy())
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    user, movie = torch.tensor([0, 1, 4]), torch.tensor([6, 0, 3])
    with torch.no_grad():
        rating = head(z_user, z_movie, user, movie)[0].numpy()
    pairs = twin.score_pairs(z_user.numpy(), z_movie.numpy(), user.numpy(), movie.numpy())
    np.testing.assert_allclose(pairs, rating, rtol=1e-5, atol=1e-5)
