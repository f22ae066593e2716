"""MLflow tracking: run lifecycle, params and tags, plots, and the servable pyfunc model."""
