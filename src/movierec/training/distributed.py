"""Which process this is, before Lightning's strategy says so.

The task opens its MLflow run and prepares the data before the Trainer exists, so it
needs the process's rank from the environment. Lightning's `rank_zero_only.rank` is read
at import from RANK, LOCAL_RANK, SLURM_PROCID or JSM_NAMESPACE_RANK: right under torchrun
and SLURM, but a node started the plain way (Lightning's own cluster environment:
MASTER_ADDR, MASTER_PORT and NODE_RANK set, one command per node) has none of them, so
every node's first process would take itself for global rank 0 and open its own run.
The strategy sets the exact global rank later (`DDPStrategy.setup_distributed`).
"""

from __future__ import annotations

import os

from pytorch_lightning.utilities import rank_zero_only


def local_rank() -> int:
    """This process's index on its node (0 for its first or only process)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def claim_rank_from_environment(devices_per_node: object) -> int:
    """Set `rank_zero_only.rank` from NODE_RANK/LOCAL_RANK where Lightning's import-time
    guess missed NODE_RANK; return the rank now in force.

    devices_per_node: `trainer.devices` (an int; anything else counts as 1, which only
    matters for whether the rank is 0 until the strategy sets the exact one).
    """
    node_rank = int(os.environ.get("NODE_RANK") or os.environ.get("GROUP_RANK") or 0)
    if node_rank > 0 and "RANK" not in os.environ:
        per_node = (
            devices_per_node if isinstance(devices_per_node, int) and devices_per_node > 0 else 1
        )
        rank_zero_only.rank = node_rank * per_node + local_rank()
    return rank_zero_only.rank
