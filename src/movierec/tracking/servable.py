"""The MLflow pyfunc model: original (userId, movieId) pairs in, predicted ratings out.

    model = mlflow.pyfunc.load_model("runs:/<run_id>/model")
    model.predict(pd.DataFrame({"userId": [1, 1], "movieId": [31, 1029]}))  # → ratings

`mlflow models serve -m runs:/<run_id>/model --env-manager local` answers
`POST /invocations` with `{"dataframe_split": {"columns": ["userId", "movieId"],
"data": [[1, 31], [1, 1029]]}}` → `{"predictions": [...]}`.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import infer_signature

import movierec

BUNDLE_ARTIFACT = "bundle"
REQUIREMENTS = [
    "torch>=2.4",
    "torch-geometric>=2.5",
    "pytorch-lightning>=2.4",
    "torchmetrics>=1.4",
    "hydra-core>=1.3",
    "pandas>=2.1",
    "pyarrow>=15",
    "numpy>=1.26",
]


class RatingModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around `movierec.inference.TrainedModel`."""

    def load_context(self, context) -> None:
        from movierec.inference import TrainedModel

        self.model = TrainedModel.load(context.artifacts[BUNDLE_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.Series:
        missing = [c for c in ("userId", "movieId") if c not in model_input.columns]
        if missing:
            raise ValueError(
                f"input lacks column(s) {', '.join(missing)}; expected userId, movieId"
            )
        ratings = self.model.predict_ratings(model_input["userId"], model_input["movieId"])
        return pd.Series(ratings, name="rating")


def log_servable_model(run_id: str, client_uri: str, bundle: Path, example: pd.DataFrame) -> str:
    """Log `bundle` as the run's `model` artifact (pyfunc flavor); return its model URI."""
    wrapper = RatingModel()
    wrapper.load_context(_Context({BUNDLE_ARTIFACT: str(bundle)}))
    output = wrapper.predict(None, example)
    signature = infer_signature(example, output)
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(client_uri)
    try:
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
                artifacts={BUNDLE_ARTIFACT: str(bundle)},
                code_paths=[str(Path(movierec.__file__).parent)],
                signature=signature,
                input_example=example,
                pip_requirements=REQUIREMENTS,
            )
    finally:
        mlflow.set_tracking_uri(previous_uri)
    return info.model_uri


class _Context:
    def __init__(self, artifacts: dict[str, str]) -> None:
        self.artifacts = artifacts
