"""Cold-start evaluation: NDCG@10 and Recall@10 for held-out users given N ratings.

python scripts/train.py split=cold_start model=mf             # train without those users
python scripts/cold_start.py <that run's output folder> [--given 1 3 5 10]
"""

import argparse
import os
from pathlib import Path

os.environ.setdefault("MOVIEREC_ROOT", str(Path(__file__).resolve().parents[1]))

from movierec.tasks.cold_start import evaluate_cold_start  # after MOVIEREC_ROOT

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a scripts/train.py output folder (split=cold_start)")
    parser.add_argument("--given", type=int, nargs="+", default=[1, 3, 5, 10])
    args = parser.parse_args()
    table = evaluate_cold_start(args.run_dir, tuple(args.given))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
