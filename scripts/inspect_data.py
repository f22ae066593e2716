"""Describe a dataset and its split; optionally export the rating graph.

python scripts/inspect_data.py data=ml_100k [split=predefined] [export=graph.graphml]
"""

import os
from pathlib import Path

os.environ.setdefault("MOVIEREC_ROOT", str(Path(__file__).resolve().parents[1]))

from movierec.tasks.entry import inspect  # after MOVIEREC_ROOT: configs read it

if __name__ == "__main__":
    inspect()
