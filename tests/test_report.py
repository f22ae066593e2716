"""`movierec-report`: a 3-seed comparison of two models on one HTML page, read back the way
a person sees it (headless Chromium), and logged to MLflow."""

from __future__ import annotations

import html.parser
import subprocess
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.conftest import PROJECT_ROOT
from tests.helpers.configs import QUIET, TINY_DATA, compose_train
from tests.helpers.runs import train_one_split
from tests.helpers.stores import tracked_uri


class _Cells(html.parser.HTMLParser):
    """The rows of the page's leaderboard table, as lists of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._in_board = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._in_board = ("class", "leaderboard") in attrs
        elif self._in_board and tag == "tr":
            self.rows.append([])
        elif self._in_board and tag in ("td", "th"):
            self.rows[-1].append("")

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_board = False

    def handle_data(self, data):
        if self._in_board and self.rows and self.rows[-1]:
            self.rows[-1][-1] += data.strip()


def test_report_compares_two_models_over_three_seeds(tmp_path: Path, chromium: str):
    uri = tracked_uri(tmp_path)
    for model in ("mf", "ease"):
        for seed in range(3):
            overrides = [*TINY_DATA, *QUIET, f"logger.mlflow.tracking_uri={uri}",
                         f"model={model}", "trainer.max_epochs=3", f"seed={seed}"]  # fmt: skip
            train_one_split(compose_train(tmp_path / f"{model}{seed}", overrides))
    out = tmp_path / "report.html"
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "report.py"), "--experiment",
         "synthetic", "--tracking-uri", uri, "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", out.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    cells = _Cells()
    cells.feed(dom)
    header, *rows = cells.rows
    assert header[:5] == ["model", "runs", "test/ndcg_at_10", "p per user", "p over runs"]
    assert sorted(r[0] for r in rows) == ["ease", "mf"] and [r[1] for r in rows] == ["3", "3"]
    best, other = rows
    assert best[3:5] == ["best", "best"]
    means = [float(r[2].split(" ± ")[0]) for r in rows]
    assert means[0] >= means[1]  # ranked by mean test NDCG@10, best first
    p_user = float(other[3].rstrip(" †"))  # Wilcoxon over the 40 synthetic test users
    assert 0 <= p_user <= 1
    assert "learning curves" in dom and "top-10 of" in dom
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("synthetic").experiment_id
    (report_run,) = client.search_runs([experiment], "tags.`movierec.role` = 'report'")
    assert [a.path for a in client.list_artifacts(report_run.info.run_id)] == ["report.html"]
