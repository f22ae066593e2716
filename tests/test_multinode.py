"""Two nodes on one machine, started the way a cluster starts them.

Each "node" is one `scripts/train.py` process with `trainer.num_nodes=2`, one device,
gloo, and the environment of Lightning's own cluster environment: MASTER_ADDR,
MASTER_PORT and NODE_RANK (docs/scaling.md, Several nodes: the multi-node commands are the
ones run here). Each node gets its own data folder, as separate machines would have.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import PROJECT_ROOT
from tests.helpers.configs import QUIET, TINY_DATA
from tests.helpers.runs import all_runs
from tests.helpers.servers import free_port
from tests.helpers.stores import tracked_uri

BUILT = "cached processed"  # movierec.data.cache's line when it builds an entry


def test_two_nodes_give_one_process_result_one_run_one_checkpoint_set(tmp_path: Path):
    uri = tracked_uri(tmp_path)
    common = [
        sys.executable, str(PROJECT_ROOT / "scripts" / "train.py"), *TINY_DATA, *QUIET,
        "model=mf", "trainer.max_epochs=3", "seed=5", f"logger.mlflow.tracking_uri={uri}",
    ]  # fmt: skip
    single = subprocess.run(
        [*common, f"hydra.run.dir={tmp_path / 'single'}"],
        env=dict(os.environ, MOVIEREC_DATA_DIR=str(tmp_path / "data-single")),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr[-3000:]
    # created before the nodes start, so the two nodes do not race to create the store
    run_ids_before = {r.info.run_id for r in _runs(uri)}

    port = free_port()
    nodes = []
    for node_rank in (0, 1):
        env = dict(
            os.environ,
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            NODE_RANK=str(node_rank),
            MOVIEREC_DATA_DIR=str(tmp_path / f"data-node{node_rank}"),
        )
        for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):  # as a plain per-node command
            env.pop(name, None)
        nodes.append(
            subprocess.Popen(
                [
                    *common,
                    "trainer=ddp_cpu",
                    "trainer.devices=1",
                    "trainer.num_nodes=2",
                    f"hydra.run.dir={tmp_path / f'node{node_rank}'}",
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = []
    try:
        for node in nodes:
            outputs.append(node.communicate(timeout=600)[0])
    finally:
        for node in nodes:
            node.kill()
    for node, output in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, output[-3000:]

    # the same result as one process: full batch, the two ranks' half-batch gradients
    # average to the full-batch one (only the float summation order differs)
    one = json.loads((tmp_path / "single" / "metrics.json").read_text())
    two = json.loads((tmp_path / "node0" / "metrics.json").read_text())
    assert two["test/rmse"] == pytest.approx(one["test/rmse"], abs=1e-3)
    assert two["test/ndcg_at_10"] == pytest.approx(one["test/ndcg_at_10"], abs=1e-3)
    # one MLflow run, FINISHED, written by global rank 0 (node 0) only
    new_runs = [r for r in _runs(uri) if r.info.run_id not in run_ids_before]
    assert len(new_runs) == 1
    assert new_runs[0].info.status == "FINISHED"
    assert new_runs[0].info.run_id == two["mlflow_run_id"]
    assert not (tmp_path / "node1" / "metrics.json").exists()
    # one set of checkpoints, on node 0
    assert list((tmp_path / "node0" / "checkpoints").glob("*.ckpt"))
    assert not list((tmp_path / "node1").rglob("*.ckpt"))
    # each node built its data cache once, in its own folder
    for node_rank, output in enumerate(outputs):
        assert output.count(BUILT) == 1, output[-3000:]
        assert list((tmp_path / f"data-node{node_rank}" / "processed").iterdir())


def _runs(uri: str):
    return all_runs(MlflowClient(tracking_uri=uri))
