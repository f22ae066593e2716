"""Serve a trained model over HTTP (`mlflow models serve`, from this environment).

python scripts/serve.py model=<MLflow run id | runs:/<id>/model | models:/<name>@champion>
    [host=127.0.0.1] [port=5001] [workers=2]
"""

import os
from pathlib import Path

os.environ.setdefault("MOVIEREC_ROOT", str(Path(__file__).resolve().parents[1]))

from movierec.tasks.entry import serve  # after MOVIEREC_ROOT: configs read it

if __name__ == "__main__":
    serve()
