"""Train a rating model.

python scripts/train.py [data=ml_100k] [model=gcn] [split=predefined split.fold=all] ...
"""

import os
from pathlib import Path

os.environ.setdefault("MOVIEREC_ROOT", str(Path(__file__).resolve().parents[1]))

from movierec.tasks.entry import train  # after MOVIEREC_ROOT: configs read it

if __name__ == "__main__":
    train()
