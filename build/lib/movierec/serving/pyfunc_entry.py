"""MLflow "models from code" entry: defines the pyfunc model without pickling an object."""

import mlflow

from movierec.serving.pyfunc import RatingModel

mlflow.models.set_model(RatingModel())
