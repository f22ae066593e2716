"""Recommendations: exclusion of rated movies, ordering, batches, genres, unknown ids,
the popularity fallback, new users per model, and loading from checkpoints/run folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from movierec.config import build, module_settings
from movierec.data.graph import GraphSchema
from movierec.errors import ConfigError, DataError
from movierec.models.mf import BiasedMF
from movierec.serving.bundle import TrainedModel
from movierec.serving.cold_start import ColdStartUnsupported, embed_new_user
from movierec.serving.recommender import Recommender, UnknownUserError
from tests.helpers.configs import TINY_DATA, compose_train
from tests.helpers.runs import train_one_split

QUIET = ["logger=none", "callbacks.progress_bar=null", "trainer.enable_progress_bar=false"]


def _datamodule(tmp_path: Path, overrides: list[str]):
    cfg = compose_train(tmp_path, [*TINY_DATA, *QUIET, *overrides])
    datamodule = build(cfg.data, "data", split=cfg.split)
    datamodule.prepare_data()
    datamodule.setup()
    return cfg, datamodule


def _untrained(tmp_path: Path, model: str, extra: list[str] | None = None):
    """A freshly initialised model over the tiny data's split, and its datamodule."""
    cfg, datamodule = _datamodule(tmp_path, [f"model={model}", *(extra or [])])
    module = build(module_settings(cfg.model), "model", schema=datamodule.schema.as_dict())
    model = TrainedModel.from_split(module.eval(), datamodule.split_data, datamodule.data)
    return model, datamodule


@pytest.fixture(scope="module")
def mf(tmp_path_factory):
    model, datamodule = _untrained(tmp_path_factory.mktemp("mf"), "mf")
    torch.manual_seed(0)  # spread the scores so rankings are not near-ties
    with torch.no_grad():
        for table in (model.module.net.user_factors, model.module.net.movie_factors):
            table.weight.normal_(std=0.5)
        model.module.net.movie_bias.weight.normal_(std=0.5)
    model.__dict__.pop("embeddings", None)
    return Recommender(model, source="run test"), datamodule


def _rated(datamodule, user_id: int) -> set[int]:
    """movieIds the user rated in any split part (train, val, test)."""
    data = datamodule.data
    user = int(data.user_index([user_id])[0])
    rows = data.ratings[data.ratings["user"] == user]
    return set(data.movies["movieId"].to_numpy()[rows["movie"].to_numpy()].tolist())


def test_recommendations_leave_out_every_rated_movie_and_are_sorted(mf):
    rec, datamodule = mf
    n_movies = datamodule.data.n_movies
    for user_id in datamodule.data.users["userId"].to_numpy()[:8]:
        rated = _rated(datamodule, user_id)
        assert rated
        top = rec.recommend(user_id, k=10)
        assert len(top) == 10 and top["rank"].tolist() == list(range(1, 11))
        assert not rated & set(top["movieId"]), "a rated movie was recommended"
        assert top["rating"].is_monotonic_decreasing
        # the excluded list is the full ranking with the rated movies removed
        everything = rec.recommend(user_id, k=n_movies, exclude_rated=False)
        assert len(everything) == n_movies and rated <= set(everything["movieId"])
        unrated = everything[~everything["movieId"].isin(rated)]
        assert top["movieId"].tolist() == unrated["movieId"].tolist()[:10]


def test_batch_api_answers_like_one_user_at_a_time_in_request_order(mf):
    rec, datamodule = mf
    users = datamodule.data.users["userId"].to_numpy()[[5, 0, 17, 3]].tolist()
    batch = rec.recommend(users, k=4)
    assert list(dict.fromkeys(batch["userId"])) == users
    single = pd.concat([rec.recommend(u, k=4) for u in users], ignore_index=True)
    pd.testing.assert_frame_equal(batch, single)
    assert set(batch["source"]) == {"model"}


def test_genre_filter_keeps_only_that_genre(mf):
    rec, datamodule = mf
    user_id = int(datamodule.data.users["userId"].iloc[0])
    movies = datamodule.data.movies
    unrated = movies[~movies["movieId"].isin(_rated(datamodule, user_id))]
    for genre in rec.genres:
        available = int(unrated["genres"].str.split("|").map(lambda g, x=genre: x in g).sum())
        top = rec.recommend(user_id, k=5, genre=genre.upper())  # case does not matter
        assert len(top) == min(5, available), genre  # fewer when fewer are left
        assert all(genre in g.split("|") for g in top["genres"])
    both = rec.recommend(user_id, k=5, genre=[rec.genres[0], rec.genres[1]])
    assert all({rec.genres[0], rec.genres[1]} & set(g.split("|")) for g in both["genres"])
    with pytest.raises(DataError, match=r"unknown genre\(s\) Telenovela; expected any of"):
        rec.recommend(user_id, k=5, genre="Telenovela")


def test_unknown_user_is_refused_with_a_message_naming_it(mf):
    rec, datamodule = mf
    known = int(datamodule.data.users["userId"].iloc[0])
    with pytest.raises(UnknownUserError) as info:
        rec.recommend([known, 999999], k=5)
    message = str(info.value)
    assert message.startswith("user_id=999999 is not in the training data of run test")
    assert f"({datamodule.data.n_users} users)" in message and "fallback=popular" in message
    with pytest.raises(ConfigError, match="fallback='trending' is not valid"):
        rec.recommend([999999], k=5, fallback="trending")
    with pytest.raises(ConfigError, match="k=0"):
        rec.recommend([known], k=0)


def test_popular_fallback_answers_unknown_users_only(mf):
    rec, datamodule = mf
    known = int(datamodule.data.users["userId"].iloc[2])
    result = rec.recommend([999999, known], k=6, fallback="popular")
    assert list(dict.fromkeys(result["userId"])) == [999999, known]
    unknown = result[result["userId"] == 999999]
    assert len(unknown) == 6 and set(unknown["source"]) == {"popular"}
    popularity = rec.model.popularity
    expected = torch.argsort(popularity.score, descending=True)[:6].numpy()
    assert (
        unknown["movieId"].tolist()
        == datamodule.data.movies["movieId"].to_numpy()[expected].tolist()
    )
    # its rating is the damped mean rating of the movie
    assert unknown["rating"].tolist() == pytest.approx(popularity.rating[expected].tolist())
    assert set(result[result["userId"] == known]["source"]) == {"model"}


def test_unknown_movie_ids_are_named(mf):
    rec, datamodule = mf
    user_id = int(datamodule.data.users["userId"].iloc[0])
    movie_id = int(datamodule.data.movies["movieId"].iloc[0])
    with pytest.raises(DataError, match=r"unknown movieId\(s\): 424242, 515151"):
        rec.model.predict_ratings([user_id] * 3, [movie_id, 515151, 424242])
    with pytest.raises(DataError, match=r"unknown movieId\(s\): 424242"):
        rec.recommend_new_user({movie_id: 4.0, 424242: 5.0}, k=3)
    with pytest.raises(DataError, match="within 0.5–5 stars, got 7"):
        rec.recommend_new_user({movie_id: 7.0}, k=3)


def test_predicted_ratings_match_the_ranking_scores(mf):
    rec, datamodule = mf
    user_id = int(datamodule.data.users["userId"].iloc[1])
    top = rec.recommend(user_id, k=5, exclude_rated=False)
    again = rec.model.predict_ratings([user_id] * 5, top["movieId"])
    assert again.tolist() == pytest.approx(top["rating"].tolist(), abs=1e-5)


def test_mf_fold_in_recovers_a_users_factors():
    """Ratings generated exactly by known factors and bias are recovered by the fold-in."""
    schema = GraphSchema(3, 50, 0, 4, (0.5, 5.0), tuple(np.arange(1, 11) / 2), 3.5)
    net = BiasedMF(schema, dim=4, reg=1e-9).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        net.movie_factors.weight.copy_(torch.randn(50, 4, generator=generator))
        net.movie_bias.weight.copy_(torch.randn(50, 1, generator=generator) * 0.3)
    embeddings = net.encode(None)
    p, b = torch.tensor([0.5, -0.2, 0.1, 0.3]), 0.4
    movies = torch.arange(0, 50, 2)
    stars = 3.5 + b + net.movie_bias.weight[movies, 0] + net.movie_factors.weight[movies] @ p
    folded, user = embed_new_user(net, None, embeddings, movies, stars.detach())
    assert user == 3 and folded.user.shape == (4, 5)
    assert folded.user[user].tolist() == pytest.approx([*p.tolist(), b], abs=1e-4)
    assert net.accepts_new_users


def test_sage_embeds_a_new_user_like_a_trained_user_with_the_same_ratings(tmp_path):
    """SAGE without user ID embeddings (placeholder features, mean aggregation over per-level
    relations) is inductive: a new user with user u's training ratings gets u's embedding,
    hence u's scores for every movie u did not rate (the movies u rated see one more
    neighbour, so theirs move slightly)."""
    model, datamodule = _untrained(
        tmp_path,
        "sage",
        # norm=left: with symmetric weights the new user's messages would also feel the
        # one extra rating of each movie it rated
        [
            "model.net.id_embeddings=false",
            "model.net.bias=false",
            "model.net.norm=left",
            "model.net.ranking=none",  # the rating output ranks (compared with score_users)
        ],
    )
    rec = Recommender(model)
    net = model.module.net
    assert net.accepts_new_users and net.inductive
    user = 4
    edges = model.module.graph[("user", "rates", "movie")]
    mine = edges.edge_index[0] == user
    movies, stars = edges.edge_index[1][mine], edges.edge_label[mine]
    grown, new = embed_new_user(net, model.module.graph, model.embeddings, movies, stars)
    assert new == datamodule.data.n_users
    assert torch.allclose(grown.user[new], model.embeddings.user[user], atol=1e-6)
    ids = datamodule.data.movies["movieId"].to_numpy()
    ratings = dict(zip(ids[movies.numpy()], stars.tolist(), strict=True))
    result = rec.recommend_new_user(ratings, k=len(ids), exclude_rated=False)
    by_movie = dict(zip(result["movieId"], result["rating"], strict=True))
    expected = model.clamp(model.score_users(np.array([user]))[0])
    unrated = np.setdiff1d(np.arange(len(ids)), movies.numpy())
    got = [by_movie[m] for m in ids[unrated]]
    assert got == pytest.approx(expected[unrated].tolist(), abs=1e-5)
    top = rec.recommend_new_user(ratings, k=5, user_id=77)
    assert set(top["userId"]) == {77} and not set(ratings) & set(top["movieId"])


@pytest.mark.parametrize(
    ("model_name", "reason"),
    [
        ("gcmc", "GcmcNet .* message weights per training"),
        # GCN normalises its adjacency over the training node counts (it is transductive)
        ("gcn", "GcnNet cannot .* transductive"),
    ],
)
def test_transductive_models_cannot_embed_new_users(tmp_path, model_name, reason):
    model, datamodule = _untrained(tmp_path, model_name)
    movie_id = int(datamodule.data.movies["movieId"].iloc[0])
    assert not model.module.net.accepts_new_users
    with pytest.raises(ColdStartUnsupported, match=reason):
        Recommender(model).recommend_new_user({movie_id: 4.0}, k=3)


def test_sage_with_user_id_embeddings_folds_new_users_in(tmp_path):
    model, datamodule = _untrained(tmp_path, "sage")  # the default variant learns user IDs
    assert model.module.net.accepts_new_users
    movie_ids = datamodule.data.movies["movieId"].tolist()
    given = {movie_ids[0]: 5.0, movie_ids[2]: 4.5, movie_ids[5]: 1.0}
    top = Recommender(model).recommend_new_user(given, k=4)
    assert len(top) == 4 and not set(given) & set(top["movieId"])
    assert (top["source"] == "new_user").all() and top["rating"].notna().all()


def test_load_from_checkpoint_and_run_folder(tmp_path):
    """A training without MLflow: the checkpoint or its run folder name the model."""
    cfg = compose_train(tmp_path, [*TINY_DATA, *QUIET, "model=mf", "trainer.max_epochs=2"])
    metrics = train_one_split(cfg)
    run_dir = tmp_path / "run"
    with pytest.raises(DataError, match=r"no \.hydra/config\.yaml to rebuild"):
        Recommender.load(metrics["best_checkpoint"])
    config = OmegaConf.to_container(cfg, resolve=False)
    config.pop("hydra")
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(OmegaConf.create(config), run_dir / ".hydra" / "config.yaml")
    by_checkpoint = Recommender.load(metrics["best_checkpoint"])
    by_folder = Recommender.load(str(run_dir))
    assert by_folder.source == f"run folder {run_dir}"
    user_id = int(by_checkpoint.model.users["userId"].iloc[0])
    first = by_checkpoint.recommend(user_id, k=5)
    pd.testing.assert_frame_equal(first, by_folder.recommend(user_id, k=5))
    datamodule = build(cfg.data, "data", split=cfg.split)
    datamodule.prepare_data()
    datamodule.setup()
    assert not _rated(datamodule, user_id) & set(first["movieId"])
    with pytest.raises(DataError, match="no bundle folder"):
        Recommender.load(str(tmp_path / "nowhere" / "x.ckpt"))


def test_export_all_users_streams_every_users_top_k_to_parquet(mf, tmp_path, monkeypatch):
    """user_id=all: blocks of users are written as they are scored (here 7 users a block),
    and the file equals asking for every user at once."""
    from movierec.ranking import scoring
    from movierec.tasks.recommend import export_all

    rec, datamodule = mf
    monkeypatch.setattr(
        "movierec.serving.recommender.user_chunks",
        lambda users, n: scoring.user_chunks(users, n, 7 * n),
    )
    out = tmp_path / "all" / "recs.parquet"
    options = {"exclude_rated": True, "genre": None}
    export_all(rec, OmegaConf.create({"k": 3, "out": str(out)}), options)
    written = pd.read_parquet(out)
    expected = rec.recommend(datamodule.data.users["userId"].tolist(), k=3)
    assert len(written) == 3 * datamodule.data.n_users
    pd.testing.assert_frame_equal(written, expected, check_dtype=False)
    assert not list(out.parent.glob(".*partial"))
    with pytest.raises(ConfigError, match="set out=recs.parquet"):
        export_all(rec, OmegaConf.create({"k": 3, "out": None}), options)
