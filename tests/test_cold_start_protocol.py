"""The cold-start protocol (`ranking.cold_start`): what a new user is given, what is ranked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from movierec.ranking.cold_start import cold_start_metrics


def _ratings():
    """Three users over 20 movies: user 0 rates 6 movies, user 1 rates 2, user 2 rates 8."""
    rng = np.random.default_rng(0)
    user = np.repeat([0, 1, 2], [6, 2, 8])
    movie = np.concatenate([rng.choice(20, n, replace=False) for n in (6, 2, 8)])
    stars = rng.choice([1.0, 3.0, 4.0, 5.0], size=len(user))
    stars[[0, 8]] = 5.0  # each of users 0 and 2 likes something
    return user, movie, stars


def test_an_oracle_scores_one_and_the_given_ratings_are_never_ranked():
    user, movie, stars = _ratings()
    seen = []

    def oracle(given_movies, given_stars):
        # the given ratings are some of one held-out user's, never more than N
        rows = [
            np.flatnonzero((movie == m) & (stars == s))
            for m, s in zip(given_movies.numpy(), given_stars.numpy(), strict=True)
        ]
        owners = {int(user[r[0]]) for r in rows}
        assert len(owners) == 1
        (owner,) = owners
        seen.append((owner, set(given_movies.tolist())))
        scores = torch.zeros(20)
        mine = movie[user == owner]
        scores[torch.from_numpy(mine)] = torch.from_numpy(stars[user == owner]).float()
        scores[given_movies] = 100.0  # ranked first if they were candidates
        return scores

    results = cold_start_metrics(oracle, user, movie, stars, 20, given=(1, 3), k=10)
    # user 1 (2 ratings) is skipped at N = 3; a user without a relevant held-out movie too
    assert results[3]["users"] <= 2 and results[1]["users"] >= 1
    for values in results.values():
        assert values["ndcg_at_10"] == pytest.approx(1.0)
        assert values["recall_at_10"] == pytest.approx(1.0)
    assert {len(given) for _, given in seen} == {1, 3}


def test_the_draws_are_seeded():
    user, movie, stars = _ratings()
    random = torch.Generator().manual_seed(0)
    scores = torch.rand(20, generator=random)
    first = cold_start_metrics(lambda m, s: scores, user, movie, stars, 20, given=(1,), seed=3)
    again = cold_start_metrics(lambda m, s: scores, user, movie, stars, 20, given=(1,), seed=3)
    assert first == again
