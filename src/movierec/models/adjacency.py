"""How encoders pass messages: per-edge (`edge_index`) or as sparse matrix products.

PyG's SAGEConv and GCNConv also accept a transposed adjacency `adj_t` (rows = receiving
nodes) as a `torch.sparse` CSR tensor; they then aggregate with one sparse × dense product
(`torch_geometric.utils.spmm`) and never materialise the (E, d) tensor of per-edge
messages, which is what lets a 25M-rating graph fit in memory. Both paths compute the
same function (tests compare them).

`model.net.message_passing`:
    auto    sparse wherever PyG supports the aggregation on the device (everything on
            CPU; sum and mean on CUDA), else edges.
    sparse  always sparse; an aggregation the device cannot do sparsely is an error.
    edges   always per-edge messages (PyG's gather/scatter path).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch_geometric.data import HeteroData
from torch_geometric.utils import to_torch_csr_tensor

from movierec.data.graph import RATES
from movierec.errors import ConfigError

MESSAGE_PASSING = ("auto", "sparse", "edges")
# torch.sparse.mm can reduce with max/min only on CPU (PyG's spmm raises on CUDA).
_CUDA_SPARSE_AGGREGATIONS = ("sum", "mean", "add")


def use_sparse(mode: str, aggr: str, device: torch.device) -> bool:
    """Whether to pass messages as sparse products for this aggregation on `device`."""
    supported = device.type == "cpu" or aggr in _CUDA_SPARSE_AGGREGATIONS
    if mode == "sparse" and not supported:
        raise ConfigError(
            f"model.net.message_passing=sparse cannot aggregate with {aggr!r} on "
            f"{device.type}; use message_passing=auto|edges or aggr=sum|mean"
        )
    return mode == "sparse" or (mode == "auto" and supported)


def sparse_dtype(net: torch.nn.Module) -> torch.dtype:
    """The dtype a net's sparse messages carry: its parameters' dtype, at least float32
    (what `full_precision` gives its inputs)."""
    return torch.promote_types(next(net.parameters()).dtype, torch.float32)


def full_precision(x: torch.Tensor) -> torch.Tensor:
    """x upcast to at least float32 (bf16/fp16 → float32; float32/float64 unchanged)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


@contextlib.contextmanager
def sparse_messages_in_full_precision(device: torch.device, sparse: bool) -> Iterator[None]:
    """Autocast off around sparse message passing (callers upcast its inputs with
    `full_precision`): torch.sparse CSR products have no bf16/fp16 kernels on CPU, and
    summing thousands of neighbours with 8 mantissa bits loses the signal. The dense
    decoder over the (much more numerous) rating pairs stays in mixed precision."""
    if not sparse:
        yield
        return
    with torch.autocast(device.type, enabled=False):
        yield


class GraphCache:
    """Holds one structure derived from the message graph, rebuilt only when it changes.

    The training graph is fixed while a model trains, so its adjacency (sorting ~E
    entries, normalising) is built once instead of every step. The key is the edge
    tensor's storage, length and device, plus whatever `variant` the caller names.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._value: Any = None
        self.builds = 0  # how many times a structure was built (tests read it)

    def get(self, graph: HeteroData, variant: Any, build: Callable[[], Any]) -> Any:
        edges = graph[RATES].edge_index
        key = (edges.data_ptr(), edges.shape[1], edges.device, variant)
        if self._key != key:
            self._value = None  # free the old structure before building the new one
            self._value = build()
            self._key = key
            self.builds += 1
        return self._value


class MessageGraph:
    """What a GNN's layers propagate over: the message graph's adjacency, built by the
    net's `build(graph, sparse, dtype)` once per graph (`GraphCache`), as sparse CSR
    products or per-edge messages as `model.net.message_passing` and the aggregation allow
    on the device (`use_sparse`), autocast off around sparse messages.

    Every GNN (SAGE, GCN, GC-MC, LightGCN and its contrastive variants) holds one, so the
    net's own code is only how it normalises its adjacency:

        with self.message_graph.passing(device) as sparse:
            adjacency = self.message_graph.get(graph, sparse, dtype)

    Args:
        message_passing: auto | sparse | edges (checked by the net, naming its key).
        aggr: the aggregation the layers use (what `use_sparse` asks of the device).
        build: (graph, sparse, dtype) → the adjacency the net's layers take.
        prepare_edges: `prepare` builds the per-edge path's adjacency too (where building
            it costs something worth moving out of the first epoch).
    """

    def __init__(
        self,
        message_passing: str,
        aggr: str,
        build: Callable[[HeteroData, bool, torch.dtype | None], Any],
        prepare_edges: bool = False,
    ) -> None:
        self.message_passing, self.aggr = message_passing, aggr
        self._build = build
        self.prepare_edges = prepare_edges
        self.cache = GraphCache()

    def sparse(self, device: torch.device) -> bool:
        """Whether messages go as sparse products on `device`."""
        return use_sparse(self.message_passing, self.aggr, device)

    @contextlib.contextmanager
    def passing(self, device: torch.device) -> Iterator[bool]:
        """Whether messages go sparse on `device`; autocast is off inside if they do."""
        sparse = self.sparse(device)
        with sparse_messages_in_full_precision(device, sparse):
            yield sparse

    def get(self, graph: HeteroData, sparse: bool, dtype: torch.dtype | None) -> Any:
        """The adjacency of `graph` for that path and value dtype, built once."""
        return self.cache.get(graph, (sparse, dtype), lambda: self._build(graph, sparse, dtype))

    def prepare(self, graph: HeteroData, dtype: torch.dtype | None) -> None:
        """Build ahead (before the first epoch) what encoding `graph` will take."""
        sparse = self.sparse(graph[RATES].edge_index.device)
        if sparse or self.prepare_edges:
            self.get(graph, sparse, dtype)


# ---------------------------------------------------------------- backward without a sort
#
# torch differentiates `adj @ x` (CSR `adj`) through `adj.t()`, which it converts back to
# CSR, a sort of every entry, in every layer of every backward pass: at 20M ratings that
# was most of the encoder's backward and a transient copy of each adjacency. An adjacency
# whose transpose is known (the matrix itself for a symmetric one, the reverse relation's
# for a bipartite pair with symmetric weights, or one built once) carries it, and PyG's
# layers below use it. torch has no "CSR with cached transpose", hence this thin piece.

_TRANSPOSE = "_movierec_transpose"
_SUM_REDUCTIONS = ("sum", "add")


def with_transpose(adj: torch.Tensor, transpose: torch.Tensor | None = None) -> torch.Tensor:
    """`adj` (sparse CSR) tagged with its transpose (None: adj is symmetric); the tag is
    what `product` reads. Returns adj."""
    setattr(adj, _TRANSPOSE, adj if transpose is None else transpose)
    return adj


def transposed(adj: torch.Tensor) -> torch.Tensor:
    """adj^T as a CSR tensor (one sort, done once)."""
    return adj.t().to_sparse_csr()


def product(adj: torch.Tensor, x: torch.Tensor, reduce: str) -> torch.Tensor | None:
    """`adj @ x` differentiated through adj's recorded transpose, or None when adj has no
    recorded transpose or the reduction is not a plain sum (the caller's own path)."""
    transpose = getattr(adj, _TRANSPOSE, None)
    if transpose is None or reduce not in _SUM_REDUCTIONS or adj.layout != torch.sparse_csr:
        return None
    return _ProductWithTranspose.apply(adj, transpose, x)


class TransposeAware:
    """Mixin for a PyG conv whose sparse aggregation is `spmm(adj_t, x_src, reduce=aggr)`:
    a tagged adjacency aggregates through `product`, anything else through PyG."""

    def message_and_aggregate(self, adj_t, x):
        source = x[0] if isinstance(x, tuple) else x
        if isinstance(adj_t, torch.Tensor):
            out = product(adj_t, source, self.aggr)
            if out is not None:
                return out
        return super().message_and_aggregate(adj_t, x)


class _ProductWithTranspose(torch.autograd.Function):
    """`adj @ x` for a constant CSR `adj`; the backward is `adj^T @ grad` with the given
    CSR transpose."""

    @staticmethod
    def forward(ctx, adj: torch.Tensor, transpose: torch.Tensor, x: torch.Tensor):
        ctx.transpose = transpose
        return blocked_product(adj, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None, blocked_product(ctx.transpose, grad)


# ---------------------------------------------------------------- products by column blocks
#
# A CSR × dense product reads a row of x for every entry, at random over all of x. When x
# is larger than the cache (ML-25M's 162,541 users × 64 floats = 42 MB) most reads miss;
# splitting the adjacency into column blocks whose slice of x stays cached and summing
# the block products gave the same result about twice as fast for the 59k × 162k
# movies × users product (694 → 353 ms) on this project's machine. Each block rewrites the
# whole output, so it pays only for a dense adjacency: SAGE's and GCN's per-rating-level
# adjacencies got slower (hence `DENSE_ENOUGH`). torch has no cache-blocked sparse product,
# hence this thin piece; a net opts in with `add_column_blocks` when it builds the matrix.

#: bytes of x that one column block reads (well inside a server's last-level cache)
BLOCK_BYTES = 8 * 2**20
#: entries per (row × block) below which blocks cost more than they save
DENSE_ENOUGH = 16
_BLOCKS = "_movierec_column_blocks"


def add_column_blocks(adj: torch.Tensor, row_bytes: int) -> torch.Tensor:
    """Tag CSR `adj` (n, m) with column blocks for products with an x of `row_bytes` per
    row, when x (m rows) is larger than `BLOCK_BYTES`, on CPU, and the matrix is dense
    enough; otherwise leave it as it is. The blocks add 8 bytes per entry. Returns adj."""
    width = max(1, BLOCK_BYTES // max(1, row_bytes))
    n_rows, n_cols = adj.shape
    n_blocks = -(-n_cols // width)
    dense = adj.values().numel() >= DENSE_ENOUGH * n_rows * n_blocks
    if adj.device.type == "cpu" and adj.layout == torch.sparse_csr and n_blocks > 1 and dense:
        setattr(adj, _BLOCKS, column_blocks(adj, width))
    return adj


def blocked_product(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`adj @ x`, as a sum of block products when `add_column_blocks` tagged adj."""
    blocks = getattr(adj, _BLOCKS, None)
    if blocks is None or x.device != adj.device:
        return adj @ x
    out = None
    for start, block in blocks:
        part = block @ x[start : start + block.shape[1]]
        out = part if out is None else out.add_(part)
    return out


def column_blocks(adj: torch.Tensor, width: int) -> list[tuple[int, torch.Tensor]]:
    """CSR `adj` (n, m) as (first column, CSR (n, ≤ width)) blocks of consecutive columns,
    each entry in exactly one block, in its original order within its row; int32 indices
    where they fit."""
    crow, col, values = adj.crow_indices(), adj.col_indices(), adj.values()
    n_rows, n_cols = adj.shape
    row = torch.repeat_interleave(torch.arange(n_rows, device=col.device), crow.diff())
    index = torch.int32 if max(len(col), n_cols) < 2**31 else col.dtype
    blocks = []
    for start in range(0, n_cols, width):
        stop = min(start + width, n_cols)
        inside = (col >= start) & (col < stop)
        block_crow = torch.zeros(n_rows + 1, dtype=index, device=col.device)
        torch.cumsum(torch.bincount(row[inside], minlength=n_rows), 0, out=block_crow[1:])
        block_col = (col[inside] - start).to(index)
        block = torch.sparse_csr_tensor(
            block_crow, block_col, values[inside], (n_rows, stop - start)
        )
        blocks.append((start, block))
    return blocks


def csr_matrix(
    edge_index: torch.Tensor, weight: torch.Tensor | None, size: tuple[int, int]
) -> torch.Tensor:
    """PyG's `to_torch_csr_tensor` (rows = edge_index[0]) with column indices in their
    own storage: PyG's are a view of the sorted (2, E) edge index, which keeps its row
    half alive too (160 MB per 20M entries)."""
    adj = to_torch_csr_tensor(edge_index, weight, size=size)
    return compact(adj)


def compact(adj: torch.Tensor) -> torch.Tensor:
    """The CSR `adj` with indices and values that own exactly their storage."""
    parts = (adj.crow_indices(), adj.col_indices(), adj.values())
    if all(p.untyped_storage().nbytes() == p.numel() * p.element_size() for p in parts):
        return adj
    crow, col, values = (p.clone() for p in parts)
    return torch.sparse_csr_tensor(crow, col, values, adj.shape)
