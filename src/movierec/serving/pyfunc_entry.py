"""MLflow "models from code" entry: defines the pyfunc model without pickling an object."""

from movierec.serving.pyfunc import load_answerer
from movierec.tracking.pyfunc_model import set_served_model

set_served_model(load_answerer)
