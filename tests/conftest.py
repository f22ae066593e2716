"""Shared fixtures: the real-data mirror, tiny archives in every layout, tiny datasets."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from movierec.data.cache import load_ratings_data
from movierec.data.sources import DataSettings
from tests.helpers import movielens_layouts

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_MIRROR = PROJECT_ROOT.parent / "shared" / "data" / "movielens"


#: $MLFLOW_TRACKING_URI as the session found it, read before any fixture could set it
SESSION_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI")


@pytest.fixture(autouse=True)
def _restore_tracking_uri():
    """`mlflow.set_tracking_uri` also sets $MLFLOW_TRACKING_URI, which every later
    subprocess would inherit (a training would log to another test's store): undo it.
    The value restored is the session's, not the one before this test: a module-scoped
    fixture that set it ran before this fixture could read it."""
    yield
    import mlflow

    mlflow.set_tracking_uri(SESSION_TRACKING_URI)
    if SESSION_TRACKING_URI is None:  # set_tracking_uri(None) leaves the variable when
        os.environ.pop("MLFLOW_TRACKING_URI", None)  # MLflow's own URI was already None


@pytest.fixture(autouse=True, scope="session")
def _bundle_cache(tmp_path_factory: pytest.TempPathFactory):
    """Downloaded bundles go to a folder of this session, not the user's ~/.cache (the
    recommend commands that tests start inherit it)."""
    before = os.environ.get("MOVIEREC_CACHE_DIR")
    os.environ["MOVIEREC_CACHE_DIR"] = str(tmp_path_factory.mktemp("movierec-cache"))
    yield
    if before is None:
        os.environ.pop("MOVIEREC_CACHE_DIR", None)
    else:
        os.environ["MOVIEREC_CACHE_DIR"] = before


@pytest.fixture(scope="session")
def real_mirror() -> Path:
    """The folder of real GroupLens archives; must exist in CI (tests fail, not skip)."""
    mirror = Path(os.environ.get("MOVIELENS_MIRROR", SHARED_MIRROR))
    if not (mirror / "ml-100k.zip").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the MovieLens mirror {mirror} is missing")
        pytest.skip(f"real MovieLens mirror not found at {mirror}")
    return mirror


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's headless `chromium` (`.ci/run` installs it): skipped without it, failed
    when CI=true."""
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but `chromium` is not on PATH (.ci/run installs it)")
        pytest.skip("no `chromium` on PATH (apt-get install chromium)")
    return path


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One processed-data cache shared by every real-data test of the session."""
    return tmp_path_factory.mktemp("real-cache")


@pytest.fixture(scope="session")
def ml100k(real_mirror: Path, real_cache: Path):
    return load_ratings_data(DataSettings("ml_100k", str(real_cache), mirror=str(real_mirror)))


@pytest.fixture(scope="session")
def ml_latest_small(real_mirror: Path, real_cache: Path):
    return load_ratings_data(
        DataSettings("ml_latest_small", str(real_cache), mirror=str(real_mirror))
    )


@pytest.fixture
def tiny_mirror(tmp_path: Path) -> Path:
    """A mirror folder with tiny archives in every GroupLens layout."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    movielens_layouts.write_latest_csv(folder)
    movielens_layouts.write_latest_csv(folder, name="ml-25m")
    movielens_layouts.write_latest_csv(folder, name="ml-32m")
    movielens_layouts.write_dat(folder)
    movielens_layouts.write_dat(folder, name="ml-10m", inner="ml-10M100K", users=False)
    movielens_layouts.write_ml100k(folder)
    return folder


@pytest.fixture
def tiny_data(tiny_mirror: Path, tmp_path: Path):
    """The tiny ml-latest-small-layout dataset, processed."""
    return load_ratings_data(
        DataSettings(
            "ml_latest_small", str(tmp_path / "cache"), mirror=str(tiny_mirror), verify_counts=False
        )
    )
