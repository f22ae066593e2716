"""Real ml-100k and ml-latest-small through the mirror: documented sizes, canonical folds."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from movierec.data.splits import KFoldSplit, PredefinedSplit
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.integration


def test_ml100k_sizes(ml100k):
    assert (ml100k.n_users, ml100k.n_movies, ml100k.n_ratings) == (943, 1682, 100_000)
    assert len(ml100k.genres) == 19
    assert ml100k.rating_scale == (1.0, 5.0)
    assert ml100k.has_user_side_features
    title = ml100k.movies.loc[ml100k.movie_index([1])[0], "title"]
    assert title == "Toy Story (1995)"


def test_ml_latest_small_sizes(ml_latest_small):
    data = ml_latest_small
    assert (data.n_users, data.n_movies, data.n_ratings) == (610, 9724, 100_836)
    assert len(data.genres) == 20 and "(no genres listed)" in data.genres
    assert data.meta["catalog_movies"] == 9742


@pytest.mark.parametrize("fold", [1, 3])
def test_predefined_fold_matches_canonical_files(ml100k, real_mirror: Path, fold: int):
    split = PredefinedSplit(fold=fold).assign(ml100k)
    assert len(split.train) + len(split.val) == 80_000 and len(split.test) == 20_000
    with zipfile.ZipFile(real_mirror / "ml-100k.zip") as zf:
        canonical = pd.read_csv(
            zf.open(f"ml-100k/u{fold}.test"), sep="\t", names=["u", "m", "r", "t"]
        )
    ratings = ml100k.ratings
    users = ml100k.users["userId"].to_numpy()[ratings["user"].to_numpy()[split.test]]
    movies = ml100k.movies["movieId"].to_numpy()[ratings["movie"].to_numpy()[split.test]]
    ours = set(zip(users.tolist(), movies.tolist(), strict=True))
    assert ours == set(zip(canonical["u"], canonical["m"], strict=True))
    np.testing.assert_array_equal(
        np.sort(ratings["rating"].to_numpy()[split.test]), np.sort(canonical["r"].to_numpy())
    )


def test_split_is_identical_in_another_process(ml100k, real_mirror: Path, real_cache: Path):
    here = KFoldSplit(n_folds=5, fold=2, seed=7).assign(ml100k)
    digest = hashlib.sha256(np.concatenate([here.train, here.val, here.test]).tobytes()).hexdigest()
    code = (
        "import hashlib, numpy as np\n"
        "from movierec.data.cache import load_ratings_data\n"
        "from movierec.data.sources import DataSettings\n"
        "from movierec.data.splits import KFoldSplit\n"
        f"settings = DataSettings('ml_100k', {str(real_cache)!r}, mirror={str(real_mirror)!r})\n"
        "d = load_ratings_data(settings)\n"
        "s = KFoldSplit(n_folds=5, fold=2, seed=7).assign(d)\n"
        "print(hashlib.sha256(np.concatenate([s.train, s.val, s.test]).tobytes()).hexdigest())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == digest


def test_inspect_data_cli_reports_ml100k(real_mirror: Path, tmp_path: Path):
    env = dict(os.environ, MOVIELENS_MIRROR=str(real_mirror), MOVIEREC_DATA_DIR=str(tmp_path))
    graph = tmp_path / "graph.graphml"
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "scripts" / "inspect_data.py"),
            "data=ml_100k",
            "split=predefined",
            f"export={graph}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    out = result.stdout
    assert "users            943" in out
    assert "movies           1,682 rated" in out
    assert "ratings          100,000" in out
    assert "genres           19" in out
    assert "train=76,000  val=4,000  test=20,000" in out
    import networkx as nx

    exported = nx.read_graphml(graph)
    assert exported.number_of_edges() == 100_000
    assert exported.number_of_nodes() == 943 + 1682
