"""Top-K movies for a user of a trained model.

python scripts/recommend.py run_id=<MLflow run id | bundle | checkpoint> user_id=1 [k=10]
    [exclude_rated=false] [genre=Comedy] [fallback=popular] [json=recs.json]
python scripts/recommend.py run_id=<id> ratings=[[1,5],[260,4.5]]      # a new user
"""

import os
from pathlib import Path

os.environ.setdefault("MOVIEREC_ROOT", str(Path(__file__).resolve().parents[1]))

from movierec.tasks.entry import recommend  # after MOVIEREC_ROOT: configs read it

if __name__ == "__main__":
    recommend()
