"""Node input features: movie genres and the configurable user features.

User features (`data.user_features`):
    placeholder  the notebook's constant -1 vector, `data.placeholder_dim` long (20)
    side         age (standardised), gender one-hot, occupation one-hot (ml-100k, ml-1m)
    none         no input features: models use learned ID embeddings only
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from movierec.checks import check_choice
from movierec.data.processed import RatingsData
from movierec.errors import ConfigError

USER_FEATURE_KINDS = ("placeholder", "side", "none")


def movie_features(data: RatingsData) -> np.ndarray:
    """Multi-hot genres, float32 (n_movies, n_genres)."""
    return data.genre_matrix()


def user_features(data: RatingsData, kind: str, placeholder_dim: int = 20) -> np.ndarray | None:
    """User input features, float32 (n_users, dim), or None for `kind="none"`."""
    if kind == "placeholder":
        if placeholder_dim < 1:
            raise ConfigError(f"data.placeholder_dim={placeholder_dim}: expected ≥ 1")
        return np.full((data.n_users, placeholder_dim), -1.0, dtype=np.float32)
    if kind == "side":
        if not data.has_user_side_features:
            raise ConfigError(
                f"data.user_features=side needs user side features; {data.name} has none "
                "(ml_100k and ml_1m have them); use placeholder or none"
            )
        return _side_features(data.users)
    check_user_feature_kind(kind)
    return None


def check_user_feature_kind(kind: str) -> None:
    """Refuse an unknown `data.user_features` value, naming the allowed ones."""
    check_choice("data.user_features", kind, USER_FEATURE_KINDS)


def _side_features(users: pd.DataFrame) -> np.ndarray:
    age = users["age"].astype("float32")
    age = ((age - age.mean()) / (age.std() or 1.0)).fillna(0.0).to_numpy()[:, None]
    gender = pd.get_dummies(users["gender"].fillna("unknown"), dtype=np.float32).to_numpy()
    occupation = pd.get_dummies(users["occupation"].fillna("unknown"), dtype=np.float32).to_numpy()
    return np.concatenate([age, gender, occupation], axis=1).astype(np.float32)
