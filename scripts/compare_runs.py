"""Compare MLflow runs of one experiment: a sorted table and a bar plot of test RMSE.

By default the table is sorted by each run's selection metric (`selection`: the best
epoch's value, best first in its direction; one group per metric); `--sort test` sorts by
test RMSE.

python scripts/compare_runs.py --experiment ml_100k
python scripts/compare_runs.py --experiment ml_100k --filter "tags.model = 'sage'" --sort test
"""

import os
from pathlib import Path

os.environ.setdefault("MOVIEREC_ROOT", str(Path(__file__).resolve().parents[1]))

from movierec.tasks.entry import compare  # after MOVIEREC_ROOT: configs read it

if __name__ == "__main__":
    compare()
