"""Load and fault benchmark of the served model, on 127.0.0.1 only.

    python scripts/benchmark_serving.py --model <MLflow run id | runs:/… | models:/…>
        [--workers 2] [--clients 8] [--requests 200] [--pairs 100] [--k 10]

Starts `scripts/serve.py` (MLflow's server with `--env-manager local`) on a free local
port, then drives it with `--clients` threads, each sending `--requests` requests of
each kind over one keep-alive connection: rating batches (`--pairs` random known
(userId, movieId) pairs) and top-`--k` requests (one known user each), plus a bounded
round of bad requests (unknown user, userId 1.5, k = 0) that must each get a 400 while
the server stays up. Prints requests/s, p50/p95/p99 latency and errors per kind, then
stops the server. Every loop is bounded in count and in time (`--time-limit`).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    args = _parse()
    from movierec.serving.recommender import Recommender

    model = Recommender.load(args.model, args.tracking_uri).model
    users, movies = model.users["userId"].to_numpy(), model.movies["movieId"].to_numpy()
    port = _free_port()
    server = _start(args, port)
    try:
        _wait_ready(port, server, 180)
        rng = np.random.default_rng(0)
        kinds = {
            "rating": lambda: _rating_body(rng, users, movies, args.pairs),
            f"top-{args.k}": lambda: _topk_body(rng, users, args.k),
        }
        rows = []
        for name, body in kinds.items():
            bodies = [[body() for _ in range(args.requests)] for _ in range(args.clients)]
            rows.append(_drive(name, port, bodies, args.time_limit))
        faults = _faults(port, users, movies)
        rows.append(faults)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    load = os.getloadavg()
    print(f"\nload average before/after: {args.load_before} / {load[0]:.2f} {load[1]:.2f}")
    print(f"model {args.model}; {args.workers} server worker(s), {args.clients} clients\n")
    print("| requests | count | errors | req/s | p50 ms | p95 ms | p99 ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        rate = "–" if np.isnan(r["rps"]) else f"{r['rps']:.1f}"  # no rate for the bad round
        print(
            f"| {r['kind']} | {r['count']} | {r['errors']} | {rate} | {r['p50']:.1f} | "
            f"{r['p95']:.1f} | {r['p99']:.1f} |"
        )
    if any(r["errors"] for r in rows):
        sys.exit(1)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds per kind")
    args = parser.parse_args()
    args.load_before = " ".join(f"{x:.2f}" for x in os.getloadavg()[:2])
    return args


def _start(args: argparse.Namespace, port: int) -> subprocess.Popen:
    command = [sys.executable, str(ROOT / "scripts" / "serve.py"), f"model={args.model}",
               f"port={port}", f"workers={args.workers}"]  # fmt: skip
    if args.tracking_uri:
        command.append(f"tracking_uri={args.tracking_uri}")
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def _rating_body(rng, users, movies, pairs: int) -> bytes:
    data = np.stack([rng.choice(users, pairs), rng.choice(movies, pairs)], axis=1).tolist()
    return json.dumps(
        {"dataframe_split": {"columns": ["userId", "movieId"], "data": data}}
    ).encode()


def _topk_body(rng, users, k: int) -> bytes:
    data = [[int(rng.choice(users)), k]]
    return json.dumps({"dataframe_split": {"columns": ["userId", "k"], "data": data}}).encode()


def _drive(kind: str, port: int, bodies: list[list[bytes]], time_limit: float) -> dict:
    """Each client thread sends its bodies in turn on one connection; latencies in ms."""
    latencies: list[list[float]] = [[] for _ in bodies]
    errors = [0] * len(bodies)
    deadline = time.monotonic() + time_limit

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for body in bodies[index]:
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            try:
                status, _ = _post(connection, body)
            except OSError:
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                status = -1
            latencies[index].append((time.perf_counter() - started) * 1000)
            errors[index] += status != 200
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    flat = np.concatenate([np.asarray(x) for x in latencies])
    p50, p95, p99 = np.percentile(flat, [50, 95, 99]) if len(flat) else (np.nan,) * 3
    return {"kind": kind, "count": len(flat), "errors": sum(errors), "rps": len(flat) / elapsed,
            "p50": p50, "p95": p95, "p99": p99}  # fmt: skip


def _faults(port: int, users, movies) -> dict:
    """Bad requests: each must be a 400 with a message and no stack trace; then a good one."""
    user, movie = int(users[0]), int(movies[0])
    bad = [
        {"columns": ["userId", "k"], "data": [[int(users.max()) + 1, 5]]},
        {"columns": ["userId", "movieId"], "data": [[user + 0.5, movie]]},
        {"columns": ["userId", "k"], "data": [[user, 0]]},
    ]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies, errors = [], 0
    for frame in bad * 10:
        started = time.perf_counter()
        status, text = _post(connection, json.dumps({"dataframe_split": frame}).encode())
        latencies.append((time.perf_counter() - started) * 1000)
        errors += status != 400 or "Traceback" in text or "message" not in text
    status, _ = _post(connection, _topk_body(np.random.default_rng(1), users, 5))
    errors += status != 200
    connection.close()
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    return {"kind": "bad requests (expect 400)", "count": len(latencies), "errors": errors,
            "rps": float("nan"), "p50": p50, "p95": p95, "p99": p99}  # fmt: skip


def _post(connection: http.client.HTTPConnection, body: bytes) -> tuple[int, str]:
    connection.request(
        "POST", "/invocations", body=body, headers={"Content-Type": "application/json"}
    )
    response = connection.getresponse()
    return response.status, response.read().decode()


def _wait_ready(port: int, server: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited: {server.stderr.read()[-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"the server did not answer /ping within {seconds} s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
