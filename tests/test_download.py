"""Tests for bnhelpers.storage.download: verified downloads.

The download tests run a real HTTP server on 127.0.0.1; nothing leaves the machine.
"""

import hashlib
import http.server
import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest
from helpers import GZ_NAMES, write_mnist_folder

from bnhelpers.progress import PROGRESS_ENV
from bnhelpers.storage import download
from bnhelpers.storage import mnist as mnist_module
from bnhelpers.storage.download import DownloadError, download_mnist
from bnhelpers.storage.files import replacing
from bnhelpers.storage.mnist import load_mnist

pytestmark = pytest.mark.usefixtures("no_data_from_the_machine")


# --------------------------------------------------------------------------
# download_mnist against a real local HTTP server


class MirrorServer(http.server.ThreadingHTTPServer):
    """Serves {path: (body, declared Content-Length)} and records every path asked for.

    Some prefixes misbehave, each within a bounded time:
      /silent/    never answers (until the test ends);
      /paired/    holds each answer until a second request for the same path arrives (at most 5 s),
                  then sends the body in pieces: two clients download side by side;
      /endless/   sends zeros without a Content-Length, up to 64 MiB, until the client hangs up;
      /announce/  announces 1,000,000,000 bytes and sends a few;
      /trickle/   sends one byte every 50 ms, up to 30 s, until the client hangs up;
      /drip/      sends its status line and headers one byte every 50 ms, up to 30 s;
      /placed/    as another call downloading into the same folder would: puts the
                  verified file into self.place_into, then answers 404.
    """

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), MirrorHandler)
        self.routes = {}
        self.requests = []
        self.released = threading.Event()
        self.arrived = threading.Condition()
        self.requests_for = {}  # /paired/ path: number of requests so far
        self.place_into = None  # /placed/: the folder another call downloads into

    def url(self, prefix):
        return f"http://127.0.0.1:{self.server_port}/{prefix}/"

    def serve(self, prefix, name, body, declared_length=None):
        length = len(body) if declared_length is None else declared_length
        self.routes[f"/{prefix}/{name}"] = (body, length)

    def count(self, name):
        return sum(path.endswith("/" + name) for path in self.requests)


class MirrorHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.requests.append(self.path)
        if self.path.startswith("/silent/"):
            # Say nothing until the test is over: the client must time out.
            self.server.released.wait(timeout=10)
            return
        try:
            if self.path.startswith("/endless/"):
                self.send_response(200)
                self.end_headers()
                for _ in range(1024):
                    self.wfile.write(bytes(1 << 16))
                return
            if self.path.startswith("/announce/"):
                self.send_response(200)
                self.send_header("Content-Length", "1000000000")
                self.end_headers()
                self.wfile.write(bytes(1000))
                return
            if self.path.startswith("/drip/"):
                head = b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n" + b"X-Drip: " + b"x" * 600 + b"\r\n\r\n"
                for byte in head:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.05)
                return
            if self.path.startswith("/trickle/"):
                self.send_response(200)
                self.end_headers()
                for _ in range(600):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.05)
                return
        except (BrokenPipeError, ConnectionResetError):
            return  # the client gave up, as it should
        if self.path.startswith("/paired/"):
            with self.server.arrived:
                self.server.requests_for[self.path] = self.server.requests_for.get(self.path, 0) + 1
                self.server.arrived.notify_all()
                self.server.arrived.wait_for(lambda: self.server.requests_for[self.path] >= 2, timeout=5)
        if self.path.startswith("/placed/"):
            name = self.path.rsplit("/", 1)[1]
            body, _ = self.server.routes["/good/" + name]
            with replacing(self.server.place_into / name) as f:
                f.write(body)
            self.send_error(404)
            return
        if self.path not in self.server.routes:
            self.send_error(404)
            return
        body, length = self.server.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.path.startswith("/paired/"):
            for k in range(4):
                self.wfile.write(body[k * len(body) // 4 : (k + 1) * len(body) // 4])
                self.wfile.flush()
                time.sleep(0.02)
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass  # keep pytest's output clean


@pytest.fixture
def server():
    mirror = MirrorServer()
    # A short poll interval keeps shutdown() from waiting half a second per test.
    thread = threading.Thread(target=mirror.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield mirror
    mirror.released.set()
    mirror.shutdown()
    mirror.server_close()
    thread.join(timeout=5)


@pytest.fixture
def dead_mirror():
    """A URL on a local port where nothing listens: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


@pytest.fixture
def files(tmp_path):
    """{name: gzipped IDX bytes} of a tiny valid MNIST in the four standard files."""
    folder = write_mnist_folder(tmp_path / "source", n_train=24, n_test=6, compress=True)
    return {name: (folder / name).read_bytes() for name in GZ_NAMES}


@pytest.fixture
def checksums(files):
    return {name: hashlib.sha256(body).hexdigest() for name, body in files.items()}


def serve_good(server, files):
    for name, body in files.items():
        server.serve("good", name, body)


def serve_corrupt(server, files):
    for name, body in files.items():
        broken = bytearray(body)
        broken[len(broken) // 2] ^= 0xFF
        server.serve("corrupt", name, bytes(broken))


def serve_truncated(server, files):
    """Each file's first half, announced with the full length: the server then hangs up."""
    for name, body in files.items():
        server.serve("truncated", name, body[: len(body) // 2], declared_length=len(body))


def leftovers(folder):
    return sorted(path.name for path in folder.iterdir() if path.name not in GZ_NAMES)


def test_download_skips_a_dead_mirror(tmp_path, server, dead_mirror, files, checksums):
    serve_good(server, files)
    root = tmp_path / "mnist"

    paths = download_mnist(root, mirrors=[dead_mirror, server.url("good")], checksums=checksums, progress=False)

    assert paths == [root / name for name in GZ_NAMES]
    for name in GZ_NAMES:
        assert (root / name).read_bytes() == files[name]
    assert leftovers(root) == []
    d = load_mnist(root=root, verbose=False)
    assert len(d.y_train) + len(d.y_val) == 24
    assert len(d.y_test) == 6


def test_download_prefers_no_corrupt_copy(tmp_path, server, files, checksums):
    serve_corrupt(server, files)
    serve_good(server, files)
    root = tmp_path / "mnist"

    download_mnist(root, mirrors=[server.url("corrupt"), server.url("good")], checksums=checksums, progress=False)

    for name in GZ_NAMES:
        assert (root / name).read_bytes() == files[name]
        assert server.requests.count(f"/corrupt/{name}") == 1
        assert server.requests.count(f"/good/{name}") == 1
    assert leftovers(root) == []


def test_download_failure_reports_everything_and_leaves_no_trace(tmp_path, server, dead_mirror, files, checksums):
    serve_corrupt(server, files)
    serve_truncated(server, files)
    root = tmp_path / "mnist"
    root.mkdir()
    # A good file already in place, and a stale one that does not verify.
    good_name, stale_name = GZ_NAMES[1], GZ_NAMES[3]
    (root / good_name).write_bytes(files[good_name])
    (root / stale_name).write_bytes(b"an older copy")
    os.utime(root / good_name, (1_000_000, 1_000_000))
    mirrors = [server.url("corrupt"), server.url("truncated"), dead_mirror, server.url("missing")]

    with pytest.raises(DownloadError) as error:
        download_mnist(root, mirrors=mirrors, checksums=checksums, progress=False)

    failed = [name for name in GZ_NAMES if name != good_name]
    assert error.value.missing == failed
    assert error.value.folder == root
    message = str(error.value)
    assert str(root) in message
    assert good_name not in message
    for name in failed:
        assert name in message
        assert checksums[name] in message
    assert "SHA-256 is" in message  # the corrupt mirror
    assert "connection closed after" in message  # the truncated one
    assert "refused" in message.lower()  # the dead one
    assert "404" in message  # the missing one
    assert leftovers(root) == []
    assert sorted(path.name for path in root.iterdir()) == sorted([good_name, stale_name])
    assert (root / good_name).read_bytes() == files[good_name]
    assert (root / good_name).stat().st_mtime == 1_000_000
    assert (root / stale_name).read_bytes() == b"an older copy"
    assert server.count(good_name) == 0


def test_download_gives_up_on_a_silent_mirror(tmp_path, server, files, checksums):
    serve_good(server, files)
    root = tmp_path / "mnist"

    download_mnist(
        root,
        mirrors=[server.url("silent"), server.url("good")],
        checksums=checksums,
        progress=False,
        timeout=0.2,
    )

    assert all((root / name).read_bytes() == files[name] for name in GZ_NAMES)
    assert server.count(GZ_NAMES[0]) == 2


def test_download_does_not_fetch_verified_files_again(tmp_path, server, files, checksums):
    serve_good(server, files)
    root = tmp_path / "mnist"
    download_mnist(root, mirrors=[server.url("good")], checksums=checksums, progress=False)
    assert len(server.requests) == 4

    (root / GZ_NAMES[0]).write_bytes(b"damaged since")
    download_mnist(root, mirrors=[server.url("good")], checksums=checksums, progress=False)

    assert len(server.requests) == 5
    assert server.count(GZ_NAMES[0]) == 2
    assert (root / GZ_NAMES[0]).read_bytes() == files[GZ_NAMES[0]]


def test_download_progress_bar_can_be_turned_off_by_environment(
    tmp_path, server, files, checksums, monkeypatch, capsys
):
    serve_good(server, files)
    monkeypatch.setenv(PROGRESS_ENV, "0")
    download_mnist(tmp_path / "quiet", mirrors=[server.url("good")], checksums=checksums)
    assert capsys.readouterr().err == ""
    monkeypatch.delenv(PROGRESS_ENV)
    download_mnist(tmp_path / "loud", mirrors=[server.url("good")], checksums=checksums)
    assert GZ_NAMES[0] in capsys.readouterr().err


def test_download_checks_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="t10k-labels"):
        download_mnist(tmp_path, mirrors=["http://127.0.0.1:9/"], checksums={GZ_NAMES[0]: "0" * 64})
    with pytest.raises(TypeError, match="list of base URLs"):
        download_mnist(tmp_path, mirrors="http://127.0.0.1:9/")
    with pytest.raises(ValueError, match="at least one"):
        download_mnist(tmp_path, mirrors=[])
    with pytest.raises(ValueError, match="dataset"):
        download_mnist(tmp_path, dataset="cifar10")


def test_download_defaults_to_the_folder_load_mnist_reads(server, files, checksums):
    serve_good(server, files)
    download_mnist(mirrors=[server.url("good")], checksums=checksums, progress=False)
    d = load_mnist(verbose=False)
    assert len(d.y_test) == 6
    assert str(mnist_module.DATA_DIR / "mnist") in d.source


def test_published_checksums_are_complete_sha256_digests():
    for dataset, files in download.PUBLISHED.items():
        assert sorted(files) == sorted(GZ_NAMES), dataset
        assert all(re.fullmatch("[0-9a-f]{64}", file.sha256) for file in files.values()), dataset
        assert all(file.size > 0 for file in files.values()), dataset
    assert set(download.MIRRORS) == set(download.PUBLISHED) == set(mnist_module.DATASET_NAMES)


def test_two_downloads_into_one_folder_both_end_with_verified_files(tmp_path, server, files, checksums):
    """Two calls side by side: the server answers each file only once both have asked for it."""
    for name, body in files.items():
        server.serve("paired", name, body)
    root = tmp_path / "mnist"
    outcomes = [None, None]

    def download(k):
        try:
            paths = download_mnist(root, mirrors=[server.url("paired")], checksums=checksums, progress=False)
            # Right after this call returned, its files are complete and verified.
            outcomes[k] = all(hashlib.sha256(p.read_bytes()).hexdigest() == checksums[p.name] for p in paths)
        except Exception as err:
            outcomes[k] = err

    threads = [threading.Thread(target=download, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert outcomes == [True, True]
    assert all(server.count(name) == 2 for name in GZ_NAMES)  # both really downloaded every file
    assert leftovers(root) == []


def test_a_download_that_fails_while_another_call_puts_verified_files_in_place_returns_them(
    tmp_path, server, files, checksums
):
    """Two calls into one folder: the one whose mirrors fail meanwhile ends with the other's verified files."""
    serve_good(server, files)
    root = tmp_path / "mnist"
    server.place_into = root
    paths = download_mnist(root, mirrors=[server.url("placed")], checksums=checksums, progress=False)
    assert [p.read_bytes() for p in paths] == [files[name] for name in GZ_NAMES]
    assert all(server.count(name) == 1 for name in GZ_NAMES)
    assert leftovers(root) == []


def test_a_planted_symlink_is_never_followed(tmp_path, server, files, checksums):
    serve_good(server, files)
    root = tmp_path / "mnist"
    root.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for name in GZ_NAMES:  # the name the old code wrote to, and a guess at the new ones
        (root / f"{name}.part").symlink_to(victim)
        (root / f".{name}.{os.getpid()}-0000000000000000.part").symlink_to(victim)

    download_mnist(root, mirrors=[server.url("good")], checksums=checksums, progress=False)

    assert victim.read_text() == "precious"
    for name in GZ_NAMES:
        assert (root / name).read_bytes() == files[name]
        assert not (root / name).is_symlink()
        assert (root / f"{name}.part").is_symlink()


def test_downloads_stop_at_the_published_size(tmp_path, server):
    """Default checksums: each file is capped at its published size, whether announced or not."""
    root = tmp_path / "mnist"
    with pytest.raises(DownloadError) as error:
        download_mnist(root, mirrors=[server.url("endless"), server.url("announce")], progress=False)
    message = str(error.value)
    published = {
        GZ_NAMES[0]: 9_912_422,
        GZ_NAMES[1]: 28_881,
        GZ_NAMES[2]: 1_648_877,
        GZ_NAMES[3]: 4_542,
    }  # TFDS's list
    for name, size in published.items():
        assert f"/endless/{name}: the server sent more than {size:,} bytes" in message
        assert f"/announce/{name}: the server announces 1,000,000,000 bytes; this file has at most {size:,}" in message
    assert leftovers(root) == []


def test_a_trickling_mirror_is_dropped_at_the_deadline(tmp_path, checksums, server):
    """One byte every 50 ms never trips timeout=1; the deadline ends each file's attempt."""
    root = tmp_path / "mnist"
    with pytest.raises(DownloadError) as error:
        download_mnist(
            root,
            mirrors=[server.url("trickle")],
            checksums=checksums,
            progress=False,
            timeout=1,
            deadline=0.2,
        )
    for name in GZ_NAMES:
        assert f"/trickle/{name}: not complete after the 0.2 s deadline" in str(error.value)
    assert leftovers(root) == []


def test_a_mirror_that_drips_its_headers_is_dropped_at_the_deadline(tmp_path, checksums, server):
    """A byte of status line or header every 50 ms never trips timeout=1; the deadline bounds the headers too."""
    root = tmp_path / "mnist"
    with pytest.raises(DownloadError) as error:
        download_mnist(root, mirrors=[server.url("drip")], checksums=checksums, progress=False, timeout=1, deadline=0.2)
    for name in GZ_NAMES:
        assert f"/drip/{name}: not complete after the 0.2 s deadline" in str(error.value)
    assert leftovers(root) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"timeout": -1}, ValueError, r"timeout must be a positive finite number, got -1"),
        ({"timeout": "5"}, TypeError, r"timeout must be a positive number, got '5'"),
        ({"deadline": 0}, ValueError, r"deadline must be a positive finite number, got 0"),
    ],
)
def test_download_checks_timeout_and_deadline_before_any_request(tmp_path, server, checksums, kwargs, error, message):
    with pytest.raises(error, match=message):
        download_mnist(tmp_path, mirrors=[server.url("good")], checksums=checksums, progress=False, **kwargs)
    assert server.requests == []


def test_a_read_only_folder_is_named_before_any_request(tmp_path, server, files, checksums):
    serve_good(server, files)
    if os.geteuid() == 0:  # root writes through any permission bits; sysfs refuses new files even to root
        folder = Path("/sys")
        if not folder.is_dir() or (os.access(folder, os.W_OK) and not _creation_fails(folder)):
            pytest.skip("no folder that refuses new files to root")
    else:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
    with pytest.raises(DownloadError, match=r"Cannot write into .*nothing was downloaded") as error:
        download_mnist(folder, mirrors=[server.url("good")], checksums=checksums, progress=False)
    assert error.value.missing == GZ_NAMES
    assert server.requests == []


def _creation_fails(folder):
    try:
        (folder / ".bnhelpers-probe").touch(exist_ok=False)
    except OSError:
        return True
    (folder / ".bnhelpers-probe").unlink()
    return False


def test_a_damaged_copy_that_could_not_be_replaced_is_mentioned(tmp_path, dead_mirror, files, checksums):
    root = tmp_path / "mnist"
    root.mkdir()
    damaged = GZ_NAMES[2]
    (root / damaged).write_bytes(b"half a file")
    with pytest.raises(DownloadError) as error:
        download_mnist(root, mirrors=[dead_mirror], checksums=checksums, progress=False)
    digest = hashlib.sha256(b"half a file").hexdigest()
    assert f"the copy already in {root} (SHA-256 {digest}) is damaged or another version; it was left as it is" in str(
        error.value
    )
    assert (root / damaged).read_bytes() == b"half a file"
