"""MLflow "models from code" entry: defines the pyfunc model without pickling an object."""

import mlflow

from movierec.tracking.servable import RatingModel

mlflow.models.set_model(RatingModel())
