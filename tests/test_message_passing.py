"""The sparse-adjacency path computes what the per-edge path computes, values and gradients."""

from __future__ import annotations

import pytest
import torch

from movierec.errors import ConfigError
from movierec.models.adjacency import use_sparse
from movierec.models.gcmc import GcmcNet
from movierec.models.gcn import GcnNet
from movierec.models.lightgcn import LightGcnNet
from movierec.models.sage import SageNet
from tests.helpers.graphs import plain_net, synthetic_train_graph


@pytest.fixture(scope="module")
def graph_and_schema():
    return synthetic_train_graph(40, 60, 900, seed=1)


def _double(graph):
    """float64 copy: both paths then agree to ~1e-12, whatever order they sum in."""
    graph = graph.clone()
    for store in graph.stores:
        for key, value in store.items():
            if torch.is_tensor(value) and value.is_floating_point():
                store[key] = value.double()
    return graph


def _pair(cls, schema, **kwargs):
    torch.manual_seed(0)
    edges = plain_net(cls, schema, message_passing="edges", **kwargs)
    sparse = plain_net(cls, schema, message_passing="sparse", **kwargs)
    sparse.load_state_dict(edges.state_dict())
    return edges.double(), sparse.double()


def _outputs_and_grads(net, graph):
    net.train()
    embeddings = net.encode(graph)
    user, movie = torch.arange(30), torch.arange(30) % 60
    loss = net.decode(embeddings, user, movie).rating.square().mean()
    grads = torch.autograd.grad(loss, [p for p in net.parameters() if p.requires_grad])
    return embeddings, grads


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (SageNet, {"aggr": "mean"}),
        (SageNet, {"aggr": "sum", "num_layers": 3}),
        (SageNet, {"aggr": "max"}),
        (SageNet, {"aggr": "min", "id_embeddings": True}),
        (GcnNet, {"dropout": 0.0}),
        (GcnNet, {"dropout": 0.0, "relations": "single"}),
        (
            SageNet,
            {"relations": "per_rating", "aggr": "sum", "combine": "concat", "id_embeddings": True},
        ),
        (SageNet, {"relations": "per_rating", "aggr": "max", "combine": "residual"}),
        (GcnNet, {"dropout": 0.0, "relations": "per_rating", "combine": "mean"}),
    ],
)
def test_sparse_and_edge_paths_agree(graph_and_schema, cls, kwargs):
    graph, schema = graph_and_schema
    graph = _double(graph)
    edges, sparse = _pair(cls, schema, **kwargs)
    (emb_e, grads_e), (emb_s, grads_s) = (_outputs_and_grads(n, graph) for n in (edges, sparse))
    torch.testing.assert_close(
        emb_s.user, emb_e.user, rtol=1e-4, atol=1e-4
    )  # sums in another order
    torch.testing.assert_close(
        emb_s.movie, emb_e.movie, rtol=1e-4, atol=1e-4
    )  # sums in another order
    for g_s, g_e in zip(grads_s, grads_e, strict=True):
        torch.testing.assert_close(g_s, g_e, rtol=1e-9, atol=1e-9)
    # the sparse path really is sparse: its cached adjacency holds CSR matrices
    cache = sparse.message_graph.cache._value
    layouts = [a.layout for a in cache.values()] if cls is SageNet else [a.layout for a, _ in cache]
    assert set(layouts) == {torch.sparse_csr}


def test_adjacency_is_built_once_per_graph(graph_and_schema, monkeypatch):
    graph, schema = graph_and_schema
    net = plain_net(SageNet, schema, message_passing="sparse")
    calls = []
    import movierec.models.sage as sage

    real = sage.csr_matrix
    monkeypatch.setattr(sage, "csr_matrix", lambda *a, **k: calls.append(1) or real(*a, **k))
    net.encode(graph)
    net.encode(graph)
    assert len(calls) == 2  # one per edge type, on the first call only
    other = graph.clone()
    other["user", "rates", "movie"].edge_index = other["user", "rates", "movie"].edge_index[:, :-5]
    net.encode(other)
    assert len(calls) == 4  # a different graph gets its own adjacency


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (SageNet, {"message_passing": "sparse", "relations": "per_rating"}),
        (SageNet, {"message_passing": "sparse", "aggr": "sum"}),
        (GcnNet, {"message_passing": "sparse", "relations": "weighted"}),
        (GcmcNet, {}),  # always sparse
        (LightGcnNet, {"message_passing": "sparse"}),
    ],
)
def test_prepare_builds_the_adjacency_that_encoding_then_uses(graph_and_schema, cls, kwargs):
    """What `on_fit_start` builds ahead is what the first epoch's encoding needs: the
    forward pass builds nothing more."""
    graph, schema = graph_and_schema
    net = plain_net(cls, schema, **kwargs)
    cache = net.message_graph.cache
    net.prepare(graph)
    assert cache.builds == 1
    net.train()
    net.encode(graph)
    assert cache.builds == 1


def test_auto_picks_sparse_where_supported_and_sparse_refuses_elsewhere():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert use_sparse("auto", "max", cpu) and use_sparse("auto", "mean", cuda)
    assert not use_sparse("auto", "max", cuda) and not use_sparse("edges", "mean", cpu)
    with pytest.raises(ConfigError, match="message_passing=sparse cannot aggregate with 'max'"):
        use_sparse("sparse", "max", cuda)


def test_unknown_message_passing_is_rejected(graph_and_schema):
    _, schema = graph_and_schema
    with pytest.raises(ConfigError, match="model.net.message_passing='dense'"):
        GcnNet(schema, message_passing="dense")


@pytest.mark.parametrize("bpr_weight", [0.0, 0.5])
@pytest.mark.parametrize("model", ["sage", "gcn", "mf", "gcmc"])
def test_chunked_decoding_gives_the_same_loss_and_gradients(graph_and_schema, model, bpr_weight):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from movierec.training.module import RatingPredictor
    from tests.helpers.configs import CONFIG_DIR

    graph, schema = graph_and_schema
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"model={model}"]).model
    losses, grads = [], []
    for chunk in (0, 97):  # 97 does not divide the batch: the last chunk is shorter
        torch.manual_seed(0)
        module = RatingPredictor(
            cfg.net, schema.as_dict(),
            objective={**cfg.objective, "decode_chunk_size": chunk, "bpr_weight": bpr_weight,
                       "bpr_positive_rating": 3.0},
        )  # fmt: skip
        module.net.eval()  # dropout off: both runs see the same function
        module.set_graph(graph)
        store = graph["user", "rates", "movie"]
        loss = module.supervised_loss(store.edge_index[0], store.edge_index[1], store.edge_label)
        losses.append(loss)
        grads.append(torch.autograd.grad(loss, list(module.net.parameters()), allow_unused=True))
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    for chunked, whole in zip(grads[1], grads[0], strict=True):
        if whole is not None:
            torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "mirror"),
    [
        ({"relations": "per_rating", "aggr": "mean", "norm": "symmetric"}, True),
        ({"relations": "per_rating", "aggr": "mean", "norm": "left"}, True),
        ({"relations": "per_rating", "aggr": "mean", "norm": "symmetric"}, False),
        ({"relations": "weighted", "aggr": "sum", "num_layers": 2}, True),
    ],
    ids=["symmetric", "left", "reverse-differs", "weighted-sum"],
)
def test_summing_sage_differentiates_through_the_right_transpose(
    graph_and_schema, monkeypatch, kwargs, mirror
):
    """The tagged transpose (the reverse relation, or one built when the reverse edges do
    not mirror the forward ones) gives torch's own gradients through adj.t()."""
    import movierec.models.sage as sage

    graph, schema = graph_and_schema
    graph = _double(graph)
    if not mirror:  # a sampled subgraph: the reverse edges are not the forward ones flipped
        reverse = graph["movie", "rev_rates", "user"]
        keep = torch.arange(reverse.edge_index.shape[1]) % 7 != 0
        for key in ("edge_index", "edge_label", "edge_attr"):
            value = reverse[key]
            reverse[key] = value[:, keep] if key == "edge_index" else value[keep]
    torch.manual_seed(0)
    tagged = plain_net(SageNet, schema, message_passing="sparse", **kwargs).double()
    untagged = plain_net(SageNet, schema, message_passing="sparse", **kwargs).double()
    untagged.load_state_dict(tagged.state_dict())
    import movierec.models.adjacency as adjacency

    used = []

    def spy(*args):
        out = real_product(*args)
        used.append(out is not None)
        return out

    real_product = adjacency.product
    monkeypatch.setattr(adjacency, "product", spy)
    _, grads_tagged = _outputs_and_grads(tagged, graph)
    assert used and all(used)  # every aggregation went through a tagged transpose
    products = []
    real = sage.SumAwareSAGEConv.message_and_aggregate
    monkeypatch.setattr(
        sage.SumAwareSAGEConv,
        "message_and_aggregate",
        lambda self, adj_t, x: products.append(1) or real(self, adj_t, x),
    )
    monkeypatch.setattr(sage.SageNet, "_tag_transposes", lambda self, graph, edges: None)
    _, grads_untagged = _outputs_and_grads(untagged, graph)
    assert products  # the sparse aggregation ran, here through PyG's spmm
    for got, expected in zip(grads_tagged, grads_untagged, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    cache = tagged.message_graph.cache._value
    partners = [getattr(a, "_movierec_transpose", None) for a in cache.values()]
    assert all(p is not None for p in partners)
    reused = any(p is other for p in partners for other in cache.values())
    assert reused == (mirror and kwargs.get("norm") != "left")


def test_cached_adjacencies_own_exactly_their_storage(graph_and_schema):
    """PyG's CSR column indices are a view of the (2, E) sorted edge index: the cache
    keeps compact copies (half the index memory at 20M ratings)."""
    graph, schema = graph_and_schema
    for net in (
        plain_net(SageNet, schema, message_passing="sparse", relations="per_rating"),
        plain_net(GcnNet, schema, message_passing="sparse", relations="per_rating"),
        plain_net(GcnNet, schema, message_passing="sparse", relations="weighted"),
    ):
        net.encode(graph)
        cache = net.message_graph.cache._value
        matrices = list(cache.values()) if isinstance(net, SageNet) else [a for a, _ in cache]
        for adj in matrices:
            for part in (adj.crow_indices(), adj.col_indices(), adj.values()):
                assert part.untyped_storage().nbytes() == part.numel() * part.element_size()


def test_products_by_column_blocks_equal_the_plain_product(monkeypatch):
    """An adjacency tagged with column blocks (`BLOCK_BYTES` shrunk to 4 columns) gives
    the plain product's value and gradient through `product`; a sparse one is not tagged."""
    from movierec.models import adjacency

    generator = torch.Generator().manual_seed(4)
    users = torch.randint(0, 40, (600,), generator=generator)
    movies = torch.randint(0, 25, (600,), generator=generator)
    weight = torch.rand(600, dtype=torch.float64, generator=generator)
    forward = torch.stack([users, movies])
    to_user = adjacency.csr_matrix(forward, weight, (40, 25))
    to_movie = adjacency.csr_matrix(forward.flip(0), weight, (25, 40))
    monkeypatch.setattr(adjacency, "BLOCK_BYTES", 4 * 3 * 8)  # 4 rows of x per block
    monkeypatch.setattr(adjacency, "DENSE_ENOUGH", 1)
    for adj in (to_user, to_movie):
        adjacency.add_column_blocks(adj, row_bytes=3 * 8)
    adjacency.with_transpose(to_user, to_movie)
    blocks = getattr(to_user, adjacency._BLOCKS)
    assert [start for start, _ in blocks] == list(range(0, 25, 4))
    assert sum(block.values().numel() for _, block in blocks) == to_user.values().numel()
    x = torch.randn(25, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    upstream = torch.randn(40, 3, dtype=torch.float64, generator=generator)
    blocked = adjacency.product(to_user, x, "sum")
    torch.testing.assert_close(blocked, to_user.to_dense() @ x)
    (grad,) = torch.autograd.grad(blocked, x, upstream)  # through to_movie's blocks
    torch.testing.assert_close(grad, to_user.to_dense().T @ upstream)
    monkeypatch.setattr(adjacency, "DENSE_ENOUGH", 10**6)
    sparse = adjacency.csr_matrix(forward, weight, (40, 25))
    assert not hasattr(adjacency.add_column_blocks(sparse, row_bytes=3 * 8), adjacency._BLOCKS)
