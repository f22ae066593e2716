"""Where one full-batch training epoch spends its time, stage by stage, in one process.

    python scripts/profile_epoch.py --ratings data/synthetic-25m/ratings.csv \\
        --movies data/synthetic-25m/movies.csv --models sage gcn lightgcn

Each model trains `--steps` full-batch steps (the first one, which builds the adjacency,
is reported apart) and every stage is timed on its own:

    encode_fwd     the encoder over the whole training graph
    decode_fwd     the loss over every training pair, in checkpointed decoder chunks
    decode_bwd     its backward, which recomputes each chunk's forward first
    recompute      that recomputation alone (the chunked forward again, without grad)
                   (BPR on a dot-product net, LightGCN, runs fused (`models.dot_bpr`):
                   decode_fwd computes the gradient too, decode_bwd is ~0 and nothing
                   is recomputed, so recompute then times a forward it never runs)
    encode_bwd     the encoder's backward from the embeddings' gradients
    optimizer      optimizer.step() and zero_grad()
    validation     encode without grad, decode the validation pairs in eval batches
                   (nothing for a ranking-only model: its validation ranks, which
                   `ranking.validate` turns on and this profile leaves off)

Beside them, the floor: one torch CSR × dense product of the training adjacency
(n_users × n_movies, one entry per training rating) with a (n_movies, 64) float32 matrix,
best of five (scripts/floors.py). Every stage and the epoch are printed as multiples of
it, which compares across machines and loads; `uptime` is printed first.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf, open_dict

from benchmark_scale import CHUNK, full_batch_overrides
from floors import csr_product_seconds
from movierec.config import build, module_settings
from movierec.data.graph import RATES
from movierec.models.base import NodeEmbeddings
from movierec.training.optim import build_optimizer

STAGES = ("encode_fwd", "decode_fwd", "decode_bwd", "recompute", "encode_bwd", "optimizer")


def compose_run(model: str, ratings: str, movies: str, data_dir: str, extra: list[str]):
    overrides = [*full_batch_overrides(model, ratings, movies), "ranking.validate=false", *extra]
    with initialize_config_module("movierec.conf", version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.data_dir = data_dir
        cfg.paths.root_dir = str(Path.cwd())
    return cfg


def floor_seconds(graph) -> float:
    """`floors.csr_product_seconds` of the training graph's user → movie adjacency."""
    user, movie = graph[RATES].edge_index
    return csr_product_seconds(user, movie, graph["user"].num_nodes, graph["movie"].num_nodes)


def timed(times: dict, name: str, fn):
    started = time.perf_counter()
    out = fn()
    times[name] = times.get(name, 0.0) + time.perf_counter() - started
    return out


def one_step(module, optimizer, rows, times: dict) -> None:
    net, objective, graph = module.net, module.objective, module.graph
    user, movie, rating = rows
    embeddings = timed(times, "encode_fwd", lambda: net.encode(graph))
    z_user = embeddings.user.detach().requires_grad_()
    z_movie = embeddings.movie.detach().requires_grad_()
    leaves = NodeEmbeddings(z_user, z_movie)
    n_movies = module.schema.n_movies

    def loss_fn():
        loss = objective.batch_loss(net, leaves, user, movie, rating, n_movies)
        return loss + net.regularization(user, movie)

    loss = timed(times, "decode_fwd", loss_fn)
    timed(times, "decode_bwd", loss.backward)
    with torch.no_grad():
        timed(times, "recompute", loss_fn)
    timed(
        times,
        "encode_bwd",
        lambda: torch.autograd.backward(
            [embeddings.user, embeddings.movie], [z_user.grad, z_movie.grad]
        ),
    )

    def step():
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    timed(times, "optimizer", step)


@torch.no_grad()
def validation(module, rows, batch: int) -> float:
    if not module.net.predicts_ratings:
        return 0.0  # ranking-only: validation ranks (ranking.validate), off here
    started = time.perf_counter()
    module.eval()
    embeddings = module.net.encode(module.graph)
    user, movie, _ = rows
    for start in range(0, len(user), batch):
        part = slice(start, start + batch)
        module.net.decode(embeddings, user[part], movie[part])
    module.train()
    return time.perf_counter() - started


def profile(model: str, args) -> dict:
    cfg = compose_run(model, args.ratings, args.movies, args.data_dir, args.overrides)
    torch.manual_seed(cfg.seed)
    datamodule = build(cfg.data, "data", split=cfg.split)
    datamodule.prepare_data()
    datamodule.setup("fit")
    # as the train task builds it, less the selection: the profile picks no epoch (and
    # leaves ranking validation off, which a ranking model's selection metric needs)
    module = build(
        module_settings(cfg.model),
        "model",
        ranking=OmegaConf.to_container(cfg.ranking, resolve=True),
    )
    split = datamodule.split_data
    module.use_split(split)
    optimizer = build_optimizer(
        module._optimizer, module.parameters(), module.hparams.lr, module.hparams.weight_decay
    )
    first: dict = {}
    started = time.perf_counter()
    one_step(module, optimizer, split.rows("train"), first)  # builds the adjacency
    first_s = time.perf_counter() - started
    times: dict = {}
    for _ in range(args.steps):
        one_step(module, optimizer, split.rows("train"), times)
    stages = {name: times[name] / args.steps for name in STAGES}
    stages["validation"] = validation(module, split.rows("val"), CHUNK)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    floor = floor_seconds(split.graph)
    epoch = sum(v for k, v in stages.items() if k != "recompute")
    row = {
        "model": model,
        "ratings": int(sum(len(r.user) for r in split.parts.values())),
        "parameters": sum(p.numel() for p in module.parameters()),
        "first_step_s": round(first_s, 2),
        **{f"{k}_s": round(v, 2) for k, v in stages.items()},
        "epoch_s": round(epoch, 2),
        "floor_s": round(floor, 3),
        "epoch_x_floor": round(epoch / floor),
        **{f"{k}_x_floor": round(v / floor) for k, v in stages.items()},
        "peak_rss_mb": round(peak_rss_mb),  # before the floor's own build
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", required=True)
    parser.add_argument("--movies", required=True)
    parser.add_argument("--models", nargs="+", default=["sage", "gcn", "lightgcn"])
    parser.add_argument("--steps", type=int, default=1, help="timed steps after the first")
    parser.add_argument("--data-dir", default=str(Path("data").resolve()))
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides")
    args = parser.parse_args()
    print(os.popen("uptime").read().strip(), flush=True)
    for model in args.models:
        profile(model, args)


if __name__ == "__main__":
    main()
