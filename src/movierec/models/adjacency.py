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
        return adj @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None, ctx.transpose @ grad


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
