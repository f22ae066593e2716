"""Compare the finished runs of an MLflow experiment on one self-contained HTML page.

python scripts/report.py --experiment ml_100k --out report.html
python scripts/report.py --experiment ml_100k --filter "tags.model != 'gcmc'" --metric test/rmse
"""

import os
from pathlib import Path

os.environ.setdefault("MOVIEREC_ROOT", str(Path(__file__).resolve().parents[1]))

from movierec.tasks.entry import report  # after MOVIEREC_ROOT: configs read it

if __name__ == "__main__":
    report()
