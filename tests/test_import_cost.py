"""The recommend and serving entries import no sweep, Spark, plotting or training stack,
and no torch or PyG (a bundle's scoring tables rank known users with NumPy)."""

import subprocess
import sys

HEAVY = (
    "torch",
    "pyspark",
    "optuna",
    "matplotlib",
    "pytorch_lightning",
    "torchmetrics",
    "mlflow",
    "torch_geometric",
    "networkx",
)


def test_recommend_and_serving_entries_import_no_heavy_stack():
    code = (
        "import sys, movierec.tasks.recommend, movierec.serving.bundle, movierec.serving.loading; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert done.stdout.strip() == ""
