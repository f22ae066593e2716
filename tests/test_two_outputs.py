"""SAGE and GCN with a second output (`model.net.ranking=dot`): one encoder that rates in
stars and ranks by a BPR-trained score; both losses reach the shared encoder."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from movierec.data.graph import RATES
from movierec.errors import ConfigError
from movierec.models.base import graph_with_user
from movierec.training.module import RatingPredictor
from tests.helpers.graphs import synthetic_train_graph

FAMILIES = {
    "sage": {
        "_target_": "movierec.models.sage.SageNet",
        "hidden": 8,
        "num_layers": 1,
        "id_embeddings": True,
        "relations": "per_rating",
        "combine": "concat",
        "norm": "symmetric",
        "decoder": "dot",
        "bias": True,
        "ranking": "none",
    },
    "gcn": {
        "_target_": "movierec.models.gcn.GcnNet",
        "hidden": 8,
        "num_layers": 1,
        "id_embeddings": True,
        "relations": "per_rating",
        "combine": "concat",
        "batch_norm": False,
        "dropout": 0.0,
        "decoder": "dot",
        "bias": True,
    },
}
TWO = {"ranking": "dot", "ranking_dim": 4, "ranking_weight": 0.5, "ranking_negatives": 3}


@pytest.fixture(scope="module")
def graph_and_schema():
    return synthetic_train_graph(30, 50, 600, seed=3)


def _module(family: str, graph, schema, **net) -> RatingPredictor:
    torch.manual_seed(0)
    module = RatingPredictor({**FAMILIES[family], **net}, schema.as_dict())
    module.set_graph(graph)
    return module


def _encoder_grads(module: RatingPredictor, loss: torch.Tensor) -> list[torch.Tensor]:
    """Gradients of `loss` w.r.t. the encoder's weights (input embeddings and conv layers)."""
    net = module.net
    encoder = [p for name, p in net.named_parameters() if name.startswith(("input.", "convs."))]
    return torch.autograd.grad(loss, encoder, allow_unused=True, retain_graph=True)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_both_losses_reach_the_shared_encoder(graph_and_schema, family):
    graph, schema = graph_and_schema
    module = _module(family, graph, schema, **TWO)
    net = module.net
    assert net.ranks_by_score and module.net.ranking is not None
    user, movie = graph[RATES].edge_index
    rating = graph[RATES].edge_label
    embeddings = net.encode(graph)
    rating_loss = F.mse_loss(net.decode(embeddings, user, movie).rating, rating)
    (ranking_term,) = net.training_terms(graph, embeddings, user, movie).values()
    for loss in (rating_loss, ranking_term):
        grads = _encoder_grads(module, loss)
        reached = [g for g in grads if g is not None and g.abs().sum() > 0]
        assert len(reached) >= 2, "the loss leaves the shared encoder untouched"
    # the training step adds the term, logged by name
    total = module.supervised_loss(user, movie, rating)
    assert total > rating_loss.detach()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_ranks_by_its_score_and_rates_in_stars(graph_and_schema, family):
    graph, schema = graph_and_schema
    module = _module(family, graph, schema, **TWO)
    net = module.net.eval()
    with torch.no_grad():
        embeddings = net.encode(graph)
        users = torch.arange(5)
        scores = net.score_users(embeddings, users)
        n_movies = schema.n_movies
        pair_user = users.repeat_interleave(n_movies)
        pair_movie = torch.arange(n_movies).repeat(5)
        expected = net.ranking.pairs(embeddings.user, embeddings.movie, pair_user, pair_movie)
        rating = net.decode(embeddings, pair_user, pair_movie).rating.view(5, n_movies)
        head = net.scoring_head()
        from_head = head.score_users(embeddings.user, embeddings.movie, users)
    torch.testing.assert_close(scores, expected.view(5, n_movies))
    torch.testing.assert_close(from_head, scores)
    assert not torch.allclose(scores, rating), "the ranking score is the rating"
    # a fresh net's ratings start near the mean rating: stars, not a ranking score
    assert abs(rating.mean().item() - schema.mean_rating) < 1.0


def test_a_net_without_the_switch_ranks_by_its_rating(graph_and_schema):
    graph, schema = graph_and_schema
    net = _module("sage", graph, schema).net.eval()
    assert not net.ranks_by_score and net.ranking is None
    with torch.no_grad():
        embeddings = net.encode(graph)
        scores = net.score_users(embeddings, torch.tensor([0]))
        rating = net.decode(embeddings, torch.zeros(50, dtype=torch.long), torch.arange(50))
        assert net.training_terms(graph, embeddings, torch.tensor([0]), torch.tensor([1])) == {}
    torch.testing.assert_close(scores[0], rating.rating)


def test_ranking_term_is_bpr_against_unrated_movies(graph_and_schema):
    graph, schema = graph_and_schema
    net = _module("sage", graph, schema, **TWO).net
    embeddings = net.encode(graph)
    user, movie = graph[RATES].edge_index[:, :40]
    torch.manual_seed(1)
    term = net.ranking.term(graph, embeddings.user, embeddings.movie, user, movie)
    torch.manual_seed(1)  # the same draws, by hand
    from movierec.data.negatives import draw_unrated

    negative = draw_unrated(user, 3, net.ranking.rated_pairs(graph)).long()
    assert not net.ranking.rated_pairs(graph).contains(user.unsqueeze(1), negative).any()
    positive = net.ranking.pairs(embeddings.user, embeddings.movie, user, movie)
    scores = torch.stack(
        [
            net.ranking.pairs(embeddings.user, embeddings.movie, user, negative[:, n])
            for n in range(3)
        ],
        dim=1,
    )
    expected = -0.5 * F.logsigmoid(positive.unsqueeze(1) - scores).mean()
    torch.testing.assert_close(term, expected)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ranking", "softmax"),
        ("ranking_dim", 0),
        ("ranking_weight", -1.0),
        ("ranking_negatives", 0),
    ],
)
def test_a_bad_ranking_setting_is_refused_naming_its_key(graph_and_schema, key, value):
    graph, schema = graph_and_schema
    with pytest.raises(ConfigError, match=f"model.net.{key}"):
        _module("sage", graph, schema, **{**TWO, key: value})


def test_fold_in_recovers_a_known_users_embedding_and_offset(graph_and_schema, monkeypatch):
    """Ratings a known user would give (the net's own predictions, over every movie) fold
    into that user's embedding and offset, the network untouched."""
    import movierec.models.fold_in as fold_in_module

    graph, schema = graph_and_schema
    net = _module("sage", graph, schema).net.eval()  # the rating's fit alone (no BPR term)
    with torch.no_grad():
        for parameter in net.parameters():  # spread the weights (biases start at 0)
            parameter.add_(torch.randn_like(parameter) * 0.3)
        embeddings = net.encode(graph)
        known = 4
        movies = torch.arange(schema.n_movies)
        stars = net.decode(embeddings, torch.full_like(movies, known), movies).rating
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    monkeypatch.setattr(fold_in_module, "FOLD_IN_REG", 0.0)
    monkeypatch.setattr(fold_in_module, "FOLD_IN_STEPS", 200)
    monkeypatch.setattr("movierec.models.sage.fold_in", _fold_in_without_ridge(fold_in_module))
    folded, user = net.embed_new_user(graph, embeddings, movies, stars)
    assert user == schema.n_users and folded.user.shape[0] == schema.n_users + 1
    torch.testing.assert_close(folded.user[user], embeddings.user[known], atol=2e-3, rtol=0)
    expected_offset = net.bias.user.weight[known, 0]
    torch.testing.assert_close(folded.new_user_bias[0], expected_offset, atol=2e-3, rtol=0)
    with torch.no_grad():  # the folded-in user rates as the known one does
        rating = net.decode(folded, torch.full_like(movies, user), movies).rating
    torch.testing.assert_close(rating, stars, atol=1e-3, rtol=0)
    for name, parameter in net.named_parameters():
        assert torch.equal(parameter, before[name]), f"{name} changed by the fold-in"


def _fold_in_without_ridge(module):
    return lambda data_loss, start: module.fold_in(data_loss, start, reg=0.0, steps=200)


def test_fold_in_fits_a_few_given_ratings(graph_and_schema, monkeypatch):
    import movierec.models.fold_in as fold_in_module

    # a light ridge: the shipped one (chosen for rankings) keeps z near the encoder's z₀
    monkeypatch.setattr(fold_in_module, "FOLD_IN_REG", 0.01)
    graph, schema = graph_and_schema
    net = _module("sage", graph, schema, **TWO).net.eval()
    with torch.no_grad():
        embeddings = net.encode(graph)
    movies, stars = torch.tensor([0, 7, 9]), torch.tensor([5.0, 4.5, 1.0])
    folded, user = net.embed_new_user(graph, embeddings, movies, stars)
    with torch.no_grad():
        rating = net.decode(folded, torch.full_like(movies, user), movies).rating
        scores = net.score_users(folded, torch.tensor([user]))
    # fitted towards the given stars (a light ridge keeps it from fitting them exactly)
    assert (rating - stars).abs().mean() < 0.25 * (stars - schema.mean_rating).abs().mean()
    assert scores.shape == (1, schema.n_movies) and torch.isfinite(scores).all()


def test_fold_in_with_a_ranking_output_scores_the_given_movies_up(graph_and_schema, monkeypatch):
    import movierec.models.fold_in as fold_in_module

    monkeypatch.setattr(fold_in_module, "FOLD_IN_REG", 0.01)  # light: the BPR term's pull shows
    graph, schema = graph_and_schema
    net = _module("sage", graph, schema, **{**TWO, "ranking_weight": 5.0}).net.eval()
    with torch.no_grad():
        embeddings = net.encode(graph)
    movies = torch.tensor([3, 11, 20, 31])
    with torch.no_grad():  # stars the start already predicts: only the BPR term moves z
        grown = net.encode(graph_with_user(graph, movies, torch.full((4,), 4.0), (0.5, 5.0)))
        start = grown.user[-1]
        rows = torch.zeros_like(movies)
        stars = net.decoder(start[None], embeddings.movie, rows, movies)[0]
        stars = stars + net.bias.movie.weight[movies, 0]
    folded, user = net.embed_new_user(graph, embeddings, movies, stars)
    with torch.no_grad():
        after = net.score_users(folded, torch.tensor([user]))[0]
        before = net.ranking.grid(torch.cat([embeddings.user, start[None]]), embeddings.movie,
                                  torch.tensor([user]))[0]  # fmt: skip

    others = torch.ones(schema.n_movies, dtype=torch.bool)
    others[movies] = False

    def margin(scores):  # how far the given movies score above the rest, on average
        return scores[movies].mean() - scores[others].mean()

    assert margin(after) > margin(before) + 0.05


def test_weight_decay_leaves_the_ranking_output_alone(graph_and_schema):
    _, schema = graph_and_schema
    torch.manual_seed(0)
    module = RatingPredictor({**FAMILIES["sage"], **TWO}, schema.as_dict(), weight_decay=1e-3)
    optimizer = module.configure_optimizers()
    decayed, exempt = optimizer.param_groups
    assert decayed["weight_decay"] == 1e-3 and exempt["weight_decay"] == 0.0
    ranking = {id(p) for p in module.net.ranking.parameters()}
    assert {id(p) for p in exempt["params"]} == ranking
    assert len(decayed["params"]) + len(ranking) == len(list(module.parameters()))
    plain = RatingPredictor(FAMILIES["sage"], schema.as_dict(), weight_decay=1e-3)
    assert len(plain.configure_optimizers().param_groups) == 1
