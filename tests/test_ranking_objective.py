"""The BPR ranking term (`model.objective.bpr_weight`): its value, its masking, and what it
teaches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from movierec.data.graph import RATES
from movierec.objective import Objective
from movierec.training.module import RatingPredictor
from tests.helpers.graphs import synthetic_train_graph

MF = {"_target_": "movierec.models.mf.BiasedMF", "dim": 8, "init_std": 0.1, "reg": 0.0}


@pytest.fixture(scope="module")
def graph_and_schema():
    return synthetic_train_graph(30, 50, 600, seed=3)


def test_bpr_term_is_the_mean_log_sigmoid_margin_over_all_pairs(graph_and_schema):
    _, schema = graph_and_schema
    torch.manual_seed(0)
    module = RatingPredictor(
        MF, schema.as_dict(), objective={"bpr_weight": 0.7, "bpr_positive_rating": 4.0}
    )
    z = module.net.encode(None)
    user = torch.tensor([0, 1, 2, 3])
    movie = torch.tensor([5, 6, 7, 8])
    rating = torch.tensor([4.5, 2.0, 4.0, 1.0])
    negative = torch.tensor([9, 10, 11, 12])

    loss = module.objective.pair_loss(module.net, z.user, z.movie, user, movie, rating, negative)

    positive_score = module.net.decode(z, user, movie).rating
    negative_score = module.net.decode(z, user, negative).rating
    is_positive = torch.tensor([1.0, 0.0, 1.0, 0.0])  # ratings ≥ 4 stars
    bpr = -(F.logsigmoid(positive_score - negative_score) * is_positive).sum() / 4
    expected = F.mse_loss(positive_score, rating) + 0.7 * bpr
    torch.testing.assert_close(loss, expected)
    # with bpr off, a step's loss is the rating loss alone (no negatives drawn)
    off = Objective(bpr_weight=0.0)
    plain = off.batch_loss(module.net, z, user, movie, rating, schema.n_movies)
    torch.testing.assert_close(plain, F.mse_loss(positive_score, rating))


def _rated_above_unrated(module: RatingPredictor, graph) -> float:
    """Share of (rated, unrated) movie pairs per user that the model scores in that order."""
    with torch.no_grad():
        z = module.net.encode(graph)
        n_users, n_movies = len(z.user), len(z.movie)
        users = torch.arange(n_users).repeat_interleave(n_movies)
        movies = torch.arange(n_movies).repeat(n_users)
        scores = module.net.decode(z, users, movies).rating.view(n_users, n_movies)
    rated = torch.zeros(n_users, n_movies, dtype=torch.bool)
    rated[graph[RATES].edge_index[0], graph[RATES].edge_index[1]] = True
    wins, total = 0.0, 0
    for u in range(n_users):
        pos, neg = scores[u][rated[u]], scores[u][~rated[u]]
        wins += (pos[:, None] > neg[None, :]).float().sum().item()
        total += pos.numel() * neg.numel()
    return wins / total


def _train(graph, schema, bpr_weight: float) -> RatingPredictor:
    torch.manual_seed(0)
    module = RatingPredictor(MF, schema.as_dict(), lr=0.05, objective={"bpr_weight": bpr_weight})
    module.set_graph(graph)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.05)
    user, movie = graph[RATES].edge_index
    for _ in range(200):
        optimizer.zero_grad()
        module.supervised_loss(user, movie, graph[RATES].edge_label).backward()
        optimizer.step()
    return module


def test_bpr_teaches_the_predicted_rating_which_movies_a_user_rates(graph_and_schema):
    graph, schema = graph_and_schema
    rating_only = _rated_above_unrated(_train(graph, schema, 0.0), graph)
    with_bpr = _rated_above_unrated(_train(graph, schema, 1.0), graph)
    # random pairs: predicted ratings alone say nothing about which movies were rated (≈ 0.5)
    assert with_bpr > 0.75
    assert with_bpr > rating_only + 0.2
