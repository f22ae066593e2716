"""The popularity baseline's test metrics on a dataset's split (no training).

python scripts/popular_baseline.py data=ml_100k split=predefined split.fold=1
"""

import os
from pathlib import Path

os.environ.setdefault("MOVIEREC_ROOT", str(Path(__file__).resolve().parents[1]))

from movierec.tasks.entry import baseline  # after MOVIEREC_ROOT: configs read it

if __name__ == "__main__":
    baseline()
