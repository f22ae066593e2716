"""Optional neighbor-sampled training batches (`data.loader=neighbor`).

`data.loader=full` (the default) encodes the whole message graph every step with sparse
message passing; that is exact and fits ML-25M in memory. `data.loader=neighbor` instead
trains on PyG `LinkNeighborLoader` batches: for `data.batch_size` supervision ratings it
samples `data.num_neighbors` neighbours per hop around their users and movies, and the
model encodes only that subgraph (an approximation that bounds memory on graphs larger
still, or on small GPUs). PyG's neighbour sampler needs the compiled `pyg-lib` or
`torch-sparse` package; neither is a hard dependency because neither has wheels on PyPI.

A batch is a `HeteroData` subgraph with `batch[RATES].edge_label_index` (2, B) in local
node indices, `.edge_label` (B,) stars, and `batch[kind].node_id` the global node ids.
"""

from __future__ import annotations

import torch
import torch_geometric
import torch_geometric.typing
from torch_geometric.data import HeteroData

from movierec.checks import check_choice
from movierec.data.graph import RATES
from movierec.errors import ConfigError

LOADERS = ("full", "neighbor")


def check_loader(loader: str, batch_size: int, num_neighbors: list[int]) -> None:
    """Refuse an unusable `data.loader` setting before any data is read."""
    check_choice("data.loader", loader, LOADERS)
    if loader == "full":
        return
    if not (torch_geometric.typing.WITH_PYG_LIB or torch_geometric.typing.WITH_TORCH_SPARSE):
        version = torch.__version__.split("+")[0]
        raise ConfigError(
            "data.loader=neighbor samples with PyG's LinkNeighborLoader, which needs "
            "pyg-lib or torch-sparse, and neither is installed: pip install pyg-lib -f "
            f"https://data.pyg.org/whl/torch-{version}+cpu.html (or +cu121 etc. for your CUDA); "
            "or use data.loader=full (whole-graph sparse message passing, exact)"
        )
    if batch_size <= 0:
        raise ConfigError(
            f"data.batch_size={batch_size}: data.loader=neighbor needs a positive batch size"
        )
    if not num_neighbors or any(not isinstance(n, int) or n == 0 or n < -1 for n in num_neighbors):
        raise ConfigError(
            f"data.num_neighbors={list(num_neighbors)!r}: expected one positive count per "
            "hop (or -1 for all neighbours), e.g. [10, 10]"
        )


def neighbor_loader(
    graph: HeteroData,
    pairs: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    num_neighbors: list[int],
    batch_size: int,
) -> torch_geometric.loader.LinkNeighborLoader:
    """`LinkNeighborLoader` over the supervision `pairs` (user, movie, rating), shuffled."""
    from torch_geometric.loader import LinkNeighborLoader

    user, movie, rating = pairs
    return LinkNeighborLoader(
        graph,
        num_neighbors=list(num_neighbors),
        edge_label_index=(RATES, torch.stack([user, movie])),
        edge_label=rating,
        batch_size=batch_size,
        shuffle=True,
    )
