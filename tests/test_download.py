"""`movierec.data.download`: real fetches from a mirror folder, `file://` and a local HTTP server.

Nothing is mocked: archives are real zips built with `zipfile`, HTTP goes through a
`ThreadingHTTPServer` on 127.0.0.1, and every failure is checked for what it leaves in the
cache (an interrupted or corrupt transfer must never leave a file that a later run trusts).
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import shutil
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from movierec.data.download import archive_sha256, ensure_archive, verify_zip
from movierec.errors import DownloadError

ARCHIVE = "ml-100k.zip"
MEMBERS = ("ml-100k/u.data", "ml-100k/u.item")
U_DATA = b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"
U_ITEM = (
    "1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)"
    "|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
    "2|GoldenEye (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?GoldenEye%20(1995)"
    "|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0\n"
).encode("latin-1")
TIMEOUT_S = 2.0


# --------------------------------------------------------------------------- helpers


def write_zip(path: Path, members: dict[str, bytes] | None = None) -> bytes:
    """Write a stored (uncompressed) zip with the ml-100k inner layout; return its bytes."""
    if members is None:
        members = {"ml-100k/u.data": U_DATA, "ml-100k/u.item": U_ITEM}
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path.read_bytes()


def crc_corrupted(good: bytes) -> bytes:
    """Flip one byte inside u.data's stored payload: structure intact, CRC wrong."""
    at = good.index(U_DATA) + 5
    assert good.count(U_DATA) == 1
    bad = bytearray(good)
    bad[at] ^= 0x01
    return bytes(bad)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def part_files(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.part")) + sorted(cache.glob(".*.part"))


def cache_listing(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def sidecar_of(path: Path) -> dict:
    return json.loads(path.with_name(path.name + ".sha256.json").read_text())


@pytest.fixture
def good_zip(tmp_path: Path) -> bytes:
    return write_zip(tmp_path / "src" / ARCHIVE)


@pytest.fixture
def mirror(tmp_path: Path, good_zip: bytes) -> Path:
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / ARCHIVE).write_bytes(good_zip)
    return folder


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


# --------------------------------------------------------------------------- HTTP server

Respond = Callable[[http.server.BaseHTTPRequestHandler, int], None]


class LocalServer:
    """A ThreadingHTTPServer on 127.0.0.1 whose GET answers come from `respond(handler, n)`."""

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.paths: list[str] = []
        self.release = threading.Event()  # set on teardown: lets stalled handlers finish
        lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection; close after it

            def do_GET(self) -> None:
                with lock:
                    outer.paths.append(self.path)
                    n = len(outer.paths)
                outer.respond(self, n)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> int:
        return len(self.paths)

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=2)


@pytest.fixture
def serve() -> Iterator[Callable[[Respond], LocalServer]]:
    servers: list[LocalServer] = []

    def start(respond: Respond) -> LocalServer:
        server = LocalServer(respond)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def send_bytes(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/zip")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def send_truncated(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
    """Announce the full Content-Length, send half the bytes, then drop the connection."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/zip")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body[: len(body) // 2])
    handler.wfile.flush()
    handler.close_connection = True


def send_error(handler: http.server.BaseHTTPRequestHandler, code: int) -> None:
    handler.send_response(code)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


def serving(body: bytes, name: str = ARCHIVE) -> Respond:
    """Serve `body` at /<name> (also under any base path), 404 for anything else."""

    def respond(handler: http.server.BaseHTTPRequestHandler, n: int) -> None:
        if handler.path.rsplit("/", 1)[-1] == name:
            send_bytes(handler, body)
        else:
            send_error(handler, 404)

    return respond


# --------------------------------------------------------------------------- mirror folder


def test_mirror_folder_copies_into_cache_with_sidecar(
    mirror: Path, cache: Path, good_zip: bytes
) -> None:
    path = ensure_archive(ARCHIVE, MEMBERS, cache, mirror=str(mirror), timeout_s=TIMEOUT_S)

    assert path == cache / ARCHIVE
    assert path.is_file()
    assert path.read_bytes() == good_zip
    record = sidecar_of(path)
    assert record["sha256"] == sha256_of(good_zip)
    assert record["size"] == len(good_zip)
    assert record["mtime_ns"] == path.stat().st_mtime_ns
    assert part_files(cache) == []
    assert cache_listing(cache) == [ARCHIVE, ARCHIVE + ".sha256.json"]
    assert archive_sha256(path) == sha256_of(good_zip)
    # the mirror copy is left untouched
    assert (mirror / ARCHIVE).read_bytes() == good_zip


def test_mirror_folder_creates_nested_cache_dir(mirror: Path, tmp_path: Path) -> None:
    cache = tmp_path / "a" / "b" / "cache"
    path = ensure_archive(ARCHIVE, MEMBERS, cache, mirror=str(mirror))
    assert path.is_file()
    assert path.parent == cache


def test_mirror_folder_missing_zip_names_the_path(tmp_path: Path, cache: Path) -> None:
    empty = tmp_path / "empty-mirror"
    empty.mkdir()

    with pytest.raises(DownloadError) as excinfo:
        ensure_archive(ARCHIVE, MEMBERS, cache, mirror=str(empty), timeout_s=TIMEOUT_S)

    assert str(empty / ARCHIVE) in str(excinfo.value)
    assert "does not exist" in str(excinfo.value)
    assert cache_listing(cache) == []


def test_file_url_mirror(mirror: Path, cache: Path, good_zip: bytes) -> None:
    path = ensure_archive(ARCHIVE, MEMBERS, cache, mirror=mirror.as_uri(), timeout_s=TIMEOUT_S)
    assert path.read_bytes() == good_zip
    assert sidecar_of(path)["sha256"] == sha256_of(good_zip)
    assert part_files(cache) == []


def test_file_url_mirror_missing_zip(tmp_path: Path, cache: Path) -> None:
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    with pytest.raises(DownloadError, match=ARCHIVE):
        ensure_archive(ARCHIVE, MEMBERS, cache, mirror=empty.as_uri(), timeout_s=TIMEOUT_S)
    assert cache_listing(cache) == []


def test_no_source_configured(cache: Path) -> None:
    with pytest.raises(DownloadError, match="no mirror or URL"):
        ensure_archive(ARCHIVE, MEMBERS, cache)
    assert cache_listing(cache) == []


# --------------------------------------------------------------------------- HTTP


def test_http_mirror_and_url(serve, tmp_path: Path, good_zip: bytes) -> None:
    server = serve(serving(good_zip))

    via_mirror = ensure_archive(
        ARCHIVE, MEMBERS, tmp_path / "c1", mirror=server.base, timeout_s=TIMEOUT_S
    )
    assert via_mirror.read_bytes() == good_zip
    assert sidecar_of(via_mirror)["sha256"] == sha256_of(good_zip)
    assert server.paths == [f"/{ARCHIVE}"]

    via_url = ensure_archive(
        ARCHIVE,
        MEMBERS,
        tmp_path / "c2",
        url=f"{server.base}/files/{ARCHIVE}",
        timeout_s=TIMEOUT_S,
    )
    assert via_url.read_bytes() == good_zip
    assert server.paths == [f"/{ARCHIVE}", f"/files/{ARCHIVE}"]
    for cache in (tmp_path / "c1", tmp_path / "c2"):
        assert part_files(cache) == []


def test_transfers_show_a_progress_bar_in_bytes(
    serve, mirror: Path, tmp_path: Path, good_zip: bytes, capsys
) -> None:
    """With progress=True, over HTTP (the total from Content-Length) and from a mirror
    folder (the file's size), the bar on stderr ends at the archive's full size and the
    archive is verified as usual; off a terminal (as here) the default shows none."""
    server = serve(serving(good_zip))
    size = f"{len(good_zip)}/{len(good_zip)}"  # tqdm's "n/total" for sizes below 1 KiB
    for source in (server.base, str(mirror)):
        path = ensure_archive(ARCHIVE, MEMBERS, tmp_path / "c", mirror=source, progress=True)
        bar = capsys.readouterr().err
        assert f"fetch {ARCHIVE}" in bar and "100%" in bar and size in bar, bar
        assert path.read_bytes() == good_zip
        assert sidecar_of(path)["sha256"] == sha256_of(good_zip)
        path.unlink()
    ensure_archive(ARCHIVE, MEMBERS, tmp_path / "c2", mirror=server.base)
    assert (tmp_path / "c2" / ARCHIVE).read_bytes() == good_zip
    assert capsys.readouterr().err == ""


def test_http_mirror_with_trailing_slash_and_subfolder(serve, cache: Path, good_zip: bytes) -> None:
    server = serve(serving(good_zip))
    path = ensure_archive(
        ARCHIVE, MEMBERS, cache, mirror=server.base + "/movielens/", timeout_s=TIMEOUT_S
    )
    assert path.read_bytes() == good_zip
    assert server.paths == [f"/movielens/{ARCHIVE}"]


def test_mirror_takes_precedence_over_url(serve, mirror: Path, cache: Path) -> None:
    server = serve(serving(b"not used"))
    path = ensure_archive(
        ARCHIVE,
        MEMBERS,
        cache,
        mirror=str(mirror),
        url=f"{server.base}/{ARCHIVE}",
        timeout_s=TIMEOUT_S,
    )
    assert path.is_file()
    assert server.requests == 0


def test_interrupted_transfer_is_retried(serve, cache: Path, good_zip: bytes) -> None:
    def respond(handler: http.server.BaseHTTPRequestHandler, n: int) -> None:
        if n == 1:
            send_truncated(handler, good_zip)
        else:
            send_bytes(handler, good_zip)

    server = serve(respond)
    path = ensure_archive(ARCHIVE, MEMBERS, cache, mirror=server.base, attempts=2, timeout_s=1.0)

    assert server.requests == 2
    assert path.read_bytes() == good_zip
    assert sidecar_of(path)["sha256"] == sha256_of(good_zip)
    assert part_files(cache) == []
    assert cache_listing(cache) == [ARCHIVE, ARCHIVE + ".sha256.json"]


def test_always_interrupted_transfer_leaves_nothing(serve, cache: Path, good_zip: bytes) -> None:
    server = serve(lambda handler, n: send_truncated(handler, good_zip))

    with pytest.raises(DownloadError) as excinfo:
        ensure_archive(ARCHIVE, MEMBERS, cache, mirror=server.base, attempts=2, timeout_s=1.0)

    message = str(excinfo.value)
    assert "interrupted" in message
    assert f"got {len(good_zip) // 2} of {len(good_zip)} bytes" in message
    assert server.requests == 2
    assert not (cache / ARCHIVE).exists()
    assert part_files(cache) == []
    assert cache_listing(cache) == []


def test_interrupted_transfer_is_not_trusted_by_a_later_run(
    serve, cache: Path, good_zip: bytes
) -> None:
    broken = serve(lambda handler, n: send_truncated(handler, good_zip))
    with pytest.raises(DownloadError):
        ensure_archive(ARCHIVE, MEMBERS, cache, mirror=broken.base, attempts=1, timeout_s=1.0)
    assert broken.requests == 1

    healthy = serve(serving(good_zip))
    path = ensure_archive(ARCHIVE, MEMBERS, cache, mirror=healthy.base, timeout_s=1.0)
    assert healthy.requests == 1  # really fetched again, nothing stale was trusted
    assert path.read_bytes() == good_zip


def test_truncated_body_without_content_length(serve, cache: Path, good_zip: bytes) -> None:
    """No Content-Length to compare with: the zip check must still catch the truncation."""

    def respond(handler: http.server.BaseHTTPRequestHandler, n: int) -> None:
        handler.send_response(200)
        handler.end_headers()
        handler.wfile.write(good_zip[: len(good_zip) - 10])

    server = serve(respond)
    with pytest.raises(DownloadError, match="not a zip archive"):
        ensure_archive(ARCHIVE, MEMBERS, cache, mirror=server.base, attempts=2, timeout_s=1.0)
    assert server.requests == 2
    assert cache_listing(cache) == []


def test_truncated_chunked_transfer(serve, cache: Path, good_zip: bytes) -> None:
    """HTTP/1.1 chunked body cut off mid-stream: an incomplete read, never a cached file."""

    def respond(handler: http.server.BaseHTTPRequestHandler, n: int) -> None:
        handler.protocol_version = "HTTP/1.1"
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        half = good_zip[: len(good_zip) // 2]
        handler.wfile.write(f"{len(good_zip):x}\r\n".encode() + half)
        handler.wfile.flush()
        handler.close_connection = True

    server = serve(respond)
    with pytest.raises(DownloadError, match="could not fetch a valid"):
        ensure_archive(ARCHIVE, MEMBERS, cache, mirror=server.base, attempts=2, timeout_s=1.0)
    assert server.requests == 2
    assert cache_listing(cache) == []


def test_redirect_is_followed(serve, cache: Path, good_zip: bytes) -> None:
    def respond(handler: http.server.BaseHTTPRequestHandler, n: int) -> None:
        if handler.path == f"/old/{ARCHIVE}":
            handler.send_response(302)
            handler.send_header("Location", f"/new/{ARCHIVE}")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        else:
            send_bytes(handler, good_zip)

    server = serve(respond)
    path = ensure_archive(
        ARCHIVE, MEMBERS, cache, url=f"{server.base}/old/{ARCHIVE}", timeout_s=1.0
    )
    assert path.read_bytes() == good_zip
    assert server.paths == [f"/old/{ARCHIVE}", f"/new/{ARCHIVE}"]


def test_stalled_server_times_out(serve, cache: Path, good_zip: bytes) -> None:
    server: LocalServer

    def respond(handler: http.server.BaseHTTPRequestHandler, n: int) -> None:
        server.release.wait(timeout=3)  # never answers within the client's timeout

    server = serve(respond)
    started = time.monotonic()
    with pytest.raises(DownloadError, match="timed out"):
        ensure_archive(ARCHIVE, MEMBERS, cache, mirror=server.base, attempts=1, timeout_s=0.2)
    assert time.monotonic() - started < 2
    assert cache_listing(cache) == []


def test_crc_corrupt_zip_from_server(serve, cache: Path, good_zip: bytes) -> None:
    bad = crc_corrupted(good_zip)
    assert zipfile.is_zipfile(io.BytesIO(bad))  # structure still valid
    server = serve(serving(bad))

    with pytest.raises(DownloadError) as excinfo:
        ensure_archive(ARCHIVE, MEMBERS, cache, mirror=server.base, attempts=2, timeout_s=1.0)

    message = str(excinfo.value)
    assert "CRC" in message
    assert "ml-100k/u.data" in message
    assert server.requests == 2  # corrupt transfers are retried
    assert cache_listing(cache) == []


def test_garbage_bytes_from_server(serve, cache: Path) -> None:
    server = serve(serving(b"<html>rate limited</html>" * 10))
    with pytest.raises(DownloadError, match="not a zip archive"):
        ensure_archive(ARCHIVE, MEMBERS, cache, mirror=server.base, attempts=1, timeout_s=1.0)
    assert cache_listing(cache) == []


def test_missing_required_member(serve, tmp_path: Path, cache: Path) -> None:
    lacking = write_zip(tmp_path / "src" / "lacking.zip", {"ml-100k/u.data": U_DATA})
    server = serve(serving(lacking))

    with pytest.raises(DownloadError) as excinfo:
        ensure_archive(ARCHIVE, MEMBERS, cache, mirror=server.base, attempts=1, timeout_s=1.0)

    message = str(excinfo.value)
    assert "ml-100k/u.item" in message
    assert "ml-100k/u.data" not in message.split("lacks expected file(s):")[-1]
    assert cache_listing(cache) == []


def test_missing_required_member_in_mirror_folder(tmp_path: Path, cache: Path) -> None:
    folder = tmp_path / "mirror"
    write_zip(folder / ARCHIVE, {"ml-100k/u.item": U_ITEM})
    with pytest.raises(DownloadError, match=r"lacks expected file\(s\): ml-100k/u\.data"):
        ensure_archive(ARCHIVE, MEMBERS, cache, mirror=str(folder), attempts=1)
    assert cache_listing(cache) == []


def test_http_404_is_not_retried(serve, cache: Path) -> None:
    server = serve(lambda handler, n: send_error(handler, 404))
    started = time.monotonic()

    with pytest.raises(DownloadError, match="404"):
        ensure_archive(ARCHIVE, MEMBERS, cache, mirror=server.base, attempts=3, timeout_s=1.0)

    assert time.monotonic() - started < 1
    assert server.requests == 1
    assert cache_listing(cache) == []


def test_http_500_is_retried(serve, cache: Path, good_zip: bytes) -> None:
    def respond(handler: http.server.BaseHTTPRequestHandler, n: int) -> None:
        if n < 3:
            send_error(handler, 503)
        else:
            send_bytes(handler, good_zip)

    server = serve(respond)
    path = ensure_archive(ARCHIVE, MEMBERS, cache, mirror=server.base, attempts=3, timeout_s=1.0)
    assert server.requests == 3
    assert path.read_bytes() == good_zip


def test_http_500_every_time_names_the_status(serve, cache: Path) -> None:
    server = serve(lambda handler, n: send_error(handler, 500))
    with pytest.raises(DownloadError, match="HTTP 500"):
        ensure_archive(ARCHIVE, MEMBERS, cache, mirror=server.base, attempts=2, timeout_s=1.0)
    assert server.requests == 2
    assert cache_listing(cache) == []


def test_unreachable_server(cache: Path) -> None:
    probe = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    port = probe.server_address[1]
    probe.server_close()  # nothing listens on this port any more
    with pytest.raises(DownloadError, match="cannot reach"):
        ensure_archive(
            ARCHIVE, MEMBERS, cache, mirror=f"http://127.0.0.1:{port}", attempts=1, timeout_s=0.5
        )
    assert cache_listing(cache) == []


# --------------------------------------------------------------------------- cache behaviour


def test_corrupt_cached_archive_is_replaced(mirror: Path, cache: Path, good_zip: bytes) -> None:
    cache.mkdir()
    (cache / ARCHIVE).write_bytes(good_zip[: len(good_zip) // 2])  # by hand, no sidecar

    path = ensure_archive(ARCHIVE, MEMBERS, cache, mirror=str(mirror), timeout_s=TIMEOUT_S)

    assert path.read_bytes() == (mirror / ARCHIVE).read_bytes() == good_zip
    assert sidecar_of(path)["sha256"] == sha256_of(good_zip)
    assert part_files(cache) == []


def test_crc_corrupt_cached_archive_with_stale_sidecar_is_replaced(
    mirror: Path, cache: Path, good_zip: bytes
) -> None:
    path = ensure_archive(ARCHIVE, MEMBERS, cache, mirror=str(mirror))
    path.write_bytes(crc_corrupted(good_zip))  # same size, newer mtime: sidecar goes stale
    os.utime(path, ns=(time.time_ns(), sidecar_of(path)["mtime_ns"] + 1_000_000))

    again = ensure_archive(ARCHIVE, MEMBERS, cache, mirror=str(mirror))

    assert again.read_bytes() == good_zip
    assert sidecar_of(again)["sha256"] == sha256_of(good_zip)
    assert sidecar_of(again)["mtime_ns"] == again.stat().st_mtime_ns


def test_corrupt_cached_archive_and_no_mirror_copy_leaves_nothing(
    tmp_path: Path, cache: Path, good_zip: bytes
) -> None:
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    cache.mkdir()
    (cache / ARCHIVE).write_bytes(good_zip[:100])

    with pytest.raises(DownloadError, match="does not exist"):
        ensure_archive(ARCHIVE, MEMBERS, cache, mirror=str(empty))
    assert not (cache / ARCHIVE).exists()  # the corrupt copy is never trusted again
    assert part_files(cache) == []


def test_valid_cached_archive_without_sidecar_is_adopted(
    tmp_path: Path, cache: Path, good_zip: bytes
) -> None:
    cache.mkdir()
    (cache / ARCHIVE).write_bytes(good_zip)  # e.g. copied in by hand

    path = ensure_archive(ARCHIVE, MEMBERS, cache)  # no source needed

    assert path == cache / ARCHIVE
    assert sidecar_of(path)["sha256"] == sha256_of(good_zip)


def test_cached_archive_is_not_fetched_again(
    serve, mirror: Path, cache: Path, good_zip: bytes
) -> None:
    first = ensure_archive(ARCHIVE, MEMBERS, cache, mirror=str(mirror))
    mtime = first.stat().st_mtime_ns
    shutil.rmtree(mirror)

    second = ensure_archive(ARCHIVE, MEMBERS, cache, mirror=str(mirror))
    assert second == first
    assert second.stat().st_mtime_ns == mtime
    assert second.read_bytes() == good_zip

    server = serve(serving(good_zip))
    third = ensure_archive(ARCHIVE, MEMBERS, cache, mirror=server.base)
    assert third == first
    assert server.requests == 0


def test_sha256_mismatch_names_the_setting(mirror: Path, cache: Path, good_zip: bytes) -> None:
    wrong = "0" * 64
    with pytest.raises(DownloadError) as excinfo:
        ensure_archive(ARCHIVE, MEMBERS, cache, mirror=str(mirror), sha256=wrong, attempts=1)
    message = str(excinfo.value)
    assert "data.sha256" in message
    assert wrong in message
    assert sha256_of(good_zip) in message
    assert cache_listing(cache) == []


def test_sha256_match_passes_in_any_case(mirror: Path, cache: Path, good_zip: bytes) -> None:
    expected = sha256_of(good_zip).upper()
    path = ensure_archive(ARCHIVE, MEMBERS, cache, mirror=str(mirror), sha256=expected)
    assert path.read_bytes() == good_zip
    # from the cache too (sidecar path)
    assert ensure_archive(ARCHIVE, MEMBERS, cache, sha256=expected) == path


def test_sha256_mismatch_for_cached_archive(mirror: Path, cache: Path) -> None:
    ensure_archive(ARCHIVE, MEMBERS, cache, mirror=str(mirror))
    with pytest.raises(DownloadError, match=r"data\.sha256"):
        ensure_archive(ARCHIVE, MEMBERS, cache, mirror=str(mirror), sha256="f" * 64, attempts=1)


def test_sha256_mismatch_over_http(serve, cache: Path, good_zip: bytes) -> None:
    server = serve(serving(good_zip))
    with pytest.raises(DownloadError, match=r"data\.sha256"):
        ensure_archive(
            ARCHIVE, MEMBERS, cache, mirror=server.base, sha256="1" * 64, attempts=1, timeout_s=1
        )
    assert cache_listing(cache) == []


# --------------------------------------------------------------------------- verify_zip


def test_verify_zip_returns_sha256(tmp_path: Path, good_zip: bytes) -> None:
    path = tmp_path / "src" / ARCHIVE
    assert verify_zip(path, MEMBERS) == sha256_of(good_zip)
    assert verify_zip(path, []) == sha256_of(good_zip)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "not a zip archive"),
        (b"PK\x03\x04 garbage", "not a zip archive"),
        (None, "CRC"),
    ],
)
def test_verify_zip_rejects_bad_files(
    tmp_path: Path, good_zip: bytes, content: bytes | None, match: str
) -> None:
    path = tmp_path / "bad.zip"
    path.write_bytes(crc_corrupted(good_zip) if content is None else content)
    with pytest.raises(DownloadError, match=match) as excinfo:
        verify_zip(path, MEMBERS)
    assert str(path) in str(excinfo.value)


def test_archive_sha256_ignores_stale_sidecar(mirror: Path, cache: Path, tmp_path: Path) -> None:
    path = ensure_archive(ARCHIVE, MEMBERS, cache, mirror=str(mirror))
    other = write_zip(tmp_path / "other.zip", {"ml-100k/u.data": b"1\t2\t3\t4\n"})
    path.write_bytes(other)
    assert archive_sha256(path) == sha256_of(other)


def test_current_sidecar_skips_reverification(mirror: Path, cache: Path, good_zip: bytes) -> None:
    """Size + mtime unchanged → the sidecar is trusted (no re-read of a large archive)."""
    path = ensure_archive(ARCHIVE, MEMBERS, cache, mirror=str(mirror))
    record = sidecar_of(path)
    path.write_bytes(crc_corrupted(good_zip))  # same size ...
    os.utime(path, ns=(time.time_ns(), record["mtime_ns"]))  # ... and the recorded mtime
    shutil.rmtree(mirror)

    assert ensure_archive(ARCHIVE, MEMBERS, cache, mirror=str(mirror)) == path
    assert archive_sha256(path) == record["sha256"] == sha256_of(good_zip)
    assert path.read_bytes() == crc_corrupted(good_zip)  # untouched: not re-verified


@pytest.mark.parametrize("truncate", [False, True])
def test_malformed_content_length(serve, cache: Path, good_zip: bytes, truncate: bool) -> None:
    """A bogus Content-Length must not escape as a ValueError; the zip check decides."""
    body = good_zip[: len(good_zip) // 2] if truncate else good_zip

    def respond(handler: http.server.BaseHTTPRequestHandler, n: int) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "abc")
        handler.end_headers()
        handler.wfile.write(body)

    server = serve(respond)
    if truncate:
        with pytest.raises(DownloadError, match="not a zip archive"):
            ensure_archive(ARCHIVE, MEMBERS, cache, mirror=server.base, attempts=1, timeout_s=1)
        assert cache_listing(cache) == []
    else:
        path = ensure_archive(ARCHIVE, MEMBERS, cache, mirror=server.base, timeout_s=1)
        assert path.read_bytes() == good_zip
