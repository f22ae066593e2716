"""Open the MLflow UI on a tracking store in headless Chromium: page text and screenshots.

    python scripts/ui_screenshots.py --tracking-uri sqlite:///mlruns/mlflow.db \\
        --experiment ml_100k [--run <CV parent run id>] [--out ui-shots]

Starts `mlflow server` on a free port of 127.0.0.1 against the store, then opens two pages
in Debian's `chromium --headless` (`apt-get install chromium`): the experiment's runs table
and the compare view of a cross-validation run's child runs (the fold runs of `--run`, or of
the newest run of the experiment that has children). For each page it writes what a person
would see: `<page>.png` (a screenshot) and `<page>.txt` (the visible text of the rendered
page, from `--dump-dom` once the UI's JavaScript has run), then stops the server.

* The MLflow UI is a React app: its text exists only once its scripts have fetched the
  runs, so Chromium gets a virtual-time budget (`--budget-ms`), and a page whose text does
  not name the runs yet is loaded again with twice the budget (`--tries`).
* The browser resolves no host but 127.0.0.1: the UI's calls to outside services (there is
  no network here) then fail at once instead of holding the page for minutes.
* MLflow 3.17's UI opens an experiment in its GenAI view (traces, tokens) unless the URL
  asks for `?workflowType=machine_learning`, whatever the experiment's tags say; the runs
  table is opened with it.

`tests/test_ui.py` runs this on a store it creates and checks the text: the run names, a
hyperparameter, and no machine path among the params.
"""

from __future__ import annotations

import argparse
import html.parser
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow.entities import Experiment


def main() -> None:
    args = _parse()
    browser = _chromium()
    from mlflow.tracking import MlflowClient  # after the argument check: mlflow is slow

    client = MlflowClient(args.tracking_uri)
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        sys.exit(f"--experiment: no experiment named {args.experiment!r} in {args.tracking_uri}")
    parent, children = _cv_runs(client, experiment.experiment_id, args.run)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = out / "mlflow-server.log"  # a file, not a pipe: nobody reads a pipe while it runs
    with log.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", args.tracking_uri, "--workers", "1"],
            stdout=sink, stderr=subprocess.STDOUT, env=_server_env(),
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        _wait_for(f"{base}/health", args.server_timeout, server, log)
        print(f"mlflow server answered after {time.monotonic() - started:.1f} s")
        pages = {
            "runs": (runs_table_url(base, experiment), parent.info.run_name),
            "compare": (
                compare_url(base, experiment.experiment_id, [r.info.run_id for r in children]),
                children[0].info.run_name,
            ),
        }
        for name, (url, expected) in pages.items():
            started = time.monotonic()
            text = _render(browser, url, out / f"{name}.png", expected, args)
            (out / f"{name}.txt").write_text(text)
            seconds = time.monotonic() - started
            print(
                f"{name} ({seconds:.1f} s): {url}\n  {out / f'{name}.png'}\n  {out / f'{name}.txt'}"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)


def _server_env() -> dict[str, str]:
    """A server for the UI alone: no job runner processes (GenAI evaluation jobs), no
    usage telemetry sent out (there is no network here)."""
    return {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


def runs_table_url(base: str, experiment: Experiment) -> str:
    """The experiment's training runs (MLflow 3.17 opens GenAI's overview without the query),
    in the view a training stored (sorted by its selection metric, the main metrics as
    columns: `movierec.tracking.links`), where there is one."""
    from movierec.tracking.links import VIEW_TAG_PREFIX

    views = sorted(k for k in experiment.tags if k.startswith(VIEW_TAG_PREFIX + "movierec-"))
    if views:
        key = views[0].removeprefix(VIEW_TAG_PREFIX)
        return f"{base}/#/experiments/{experiment.experiment_id}/runs?viewStateShareKey={key}"
    return f"{base}/#/experiments/{experiment.experiment_id}?workflowType=machine_learning"


def compare_url(base: str, experiment_id: str, run_ids: list[str]) -> str:
    """MLflow's compare view of `run_ids`: params, metrics and tags side by side."""
    runs = urllib.parse.quote(json.dumps(run_ids))
    experiments = urllib.parse.quote(json.dumps([experiment_id]))
    return f"{base}/#/compare-runs?runs={runs}&experiments={experiments}"


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracking-uri", default="sqlite:///mlruns/mlflow.db")
    parser.add_argument("--experiment", required=True, help="experiment name, e.g. ml_100k")
    parser.add_argument("--run", help="a CV parent run id (default: the newest with children)")
    parser.add_argument("--out", default="ui-shots", help="folder for the PNGs and page text")
    parser.add_argument("--budget-ms", type=int, default=10000, help="first virtual-time budget")
    parser.add_argument("--tries", type=int, default=3, help="loads, each with twice the budget")
    parser.add_argument("--window", default="1800,1000", help="screenshot size, width,height")
    parser.add_argument("--server-timeout", type=float, default=300.0, help="seconds")
    args = parser.parse_args()
    if args.budget_ms < 1000 or args.tries < 1:
        parser.error(
            f"--budget-ms must be ≥ 1000 and --tries ≥ 1, got {args.budget_ms}, {args.tries}"
        )
    return args


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    sys.exit("no headless browser: `apt-get install chromium` (Debian) puts `chromium` on PATH")


def _cv_runs(client, experiment_id: str, run_id: str | None):
    """The CV parent run and its child runs (by fold), the newest parent unless named."""
    runs = client.search_runs([experiment_id], max_results=1000, order_by=["start_time DESC"])
    by_parent: dict[str, list] = {}
    for run in runs:
        if parent := run.data.tags.get("mlflow.parentRunId"):
            by_parent.setdefault(parent, []).append(run)
    if run_id is None:
        parents = [r for r in runs if r.info.run_id in by_parent]
        if not parents:
            sys.exit(f"experiment {experiment_id} has no run with child runs (split.fold=all)")
        run_id = parents[0].info.run_id
    if run_id not in by_parent:
        sys.exit(f"--run: {run_id} is not a parent run with children in experiment {experiment_id}")
    children = sorted(by_parent[run_id], key=lambda r: r.data.tags.get("fold", r.info.run_name))
    return client.get_run(run_id), children


def _render(browser: str, url: str, png: Path, expected: str, args) -> str:
    """The page's visible text (once it contains `expected`, or after the last try) and a
    screenshot of the same load."""
    budget = args.budget_ms
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        for _ in range(args.tries):
            png.unlink(missing_ok=True)
            command = [
                browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                "--no-first-run", f"--user-data-dir={profile}", f"--window-size={args.window}",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                f"--virtual-time-budget={budget}", f"--screenshot={png}", "--dump-dom", url,
            ]  # fmt: skip
            text = visible_text(_run(command, budget).stdout)
            if expected in text:
                break
            budget *= 2
        else:
            print(f"warning: the page never showed {expected!r}; see {png}", file=sys.stderr)
    if not png.is_file():
        sys.exit(f"chromium wrote no screenshot {png}")
    return text


def _run(command: list[str], budget_ms: int) -> subprocess.CompletedProcess:
    """Chromium, with its helper processes ended together if it outlasts its time (a
    virtual-time budget ends early on an idle page, but a starved machine is slower)."""
    timeout = 120 + 6 * budget_ms / 1000
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            sys.exit(f"chromium did not finish {command[-1]} within {timeout:.0f} s")
    if process.returncode != 0:
        sys.exit(f"chromium exited {process.returncode}: {stderr[-2000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


class _Text(html.parser.HTMLParser):
    """The text of a document that a browser would draw: no script, style or template."""

    HIDDEN = frozenset({"script", "style", "noscript", "template", "head", "svg"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag, attrs) -> None:
        if tag in self.HIDDEN:
            self.hidden += 1

    def handle_endtag(self, tag) -> None:
        if tag in self.HIDDEN and self.hidden:
            self.hidden -= 1

    def handle_data(self, data) -> None:
        if not self.hidden and data.strip():
            self.parts.append(data.strip())


def visible_text(dom: str) -> str:
    """One line per text node of the rendered DOM."""
    parser = _Text()
    parser.feed(dom)
    return "\n".join(parser.parts)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, seconds: float, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"mlflow server exited {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"mlflow server did not answer {url} within {seconds} s")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
