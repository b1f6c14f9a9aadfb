"""Tests for bnhelpers.data: IDX reading, load_mnist's sources and splits, downloads.

The download tests run a real HTTP server on 127.0.0.1; nothing leaves the machine.
"""

import gzip
import hashlib
import http.server
import os
import re
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from memory_limit import LINUX_ONLY, outcome_with_memory_limit

from bnhelpers import data
from bnhelpers.data import DownloadError, download_mnist, load_mnist, read_idx
from bnhelpers.files import replacing
from bnhelpers.progress import PROGRESS_ENV

# Written out again rather than taken from bnhelpers.data, so that a wrong
# code in the reader cannot be matched by the same wrong code in the writer.
IDX_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
GZ_NAMES = [f"{name}.gz" for name in data.IDX_FILES]


def idx_bytes(array):
    """The bytes of an IDX file holding `array`."""
    array = np.asarray(array)
    magic = struct.pack(">HBB", 0, IDX_CODES[array.dtype.str[1:]], array.ndim)
    sizes = struct.pack(f">{array.ndim}I", *array.shape)
    return magic + sizes + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path, array, compress=False):
    content = idx_bytes(array)
    path.write_bytes(gzip.compress(content, mtime=0) if compress else content)
    return path


def synthetic_digits(n, first_id=0):
    """n uint8 images whose pixel (0, 0) is first_id + i, with label (first_id + i) % 10.

    The id pixel lets a test follow each image through a shuffled split.
    """
    rng = np.random.default_rng(n)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    ids = np.arange(first_id, first_id + n)
    images[:, 0, 0] = ids
    return images, (ids % 10).astype(np.uint8)


def write_mnist_folder(folder, n_train=100, n_test=20, compress=False):
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    train_x, train_y = synthetic_digits(n_train)
    test_x, test_y = synthetic_digits(n_test, first_id=200)
    for name, array in zip(data.IDX_FILES, (train_x, train_y, test_x, test_y), strict=True):
        write_idx(folder / f"{name}{suffix}", array, compress)
    return folder


@pytest.fixture(autouse=True)
def no_data_from_the_machine(monkeypatch, tmp_path):
    """Keep a developer's $BNHELPERS_DATA or data/mnist/ out of every test.

    DATA_DIR points at an empty folder; BUNDLED_NPZ keeps pointing at the real file.
    """
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "no-data")


# --------------------------------------------------------------------------
# read_idx


@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", ">i4", ">f4", ">f8"])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4)])
@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_read_idx_round_trips(tmp_path, dtype, shape, compress):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if dtype[-2] in "ui" else None
    if info:
        array = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    else:
        array = (rng.standard_normal(shape) * 1e3).astype(dtype)
    path = write_idx(tmp_path / "array.idx", array, compress)

    result = read_idx(path)

    assert result.shape == shape
    assert result.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(result, array)
    assert result.flags.writeable


def test_read_idx_tells_gzip_by_content_not_name(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    gz_named_plainly = write_idx(tmp_path / "labels-idx2-ubyte", array, compress=True)
    raw_named_gz = write_idx(tmp_path / "labels-idx2-ubyte.gz", array, compress=False)
    np.testing.assert_array_equal(read_idx(gz_named_plainly), array)
    np.testing.assert_array_equal(read_idx(raw_named_gz), array)


GOOD = idx_bytes(np.arange(6, dtype=np.int16).reshape(2, 3))


@pytest.mark.parametrize(
    "content, complaint",
    [
        (b"\x01\x00" + GOOD[2:], "two zero bytes"),
        (GOOD[:2] + b"\x0a" + GOOD[3:], "type code 0x0A"),
        (GOOD[:-1], "truncated"),
        (GOOD + b"\x00", "trailing bytes"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (GOOD[:9], "truncated header"),
        (b"\x00\x00", "too short"),
    ],
    ids=["bad-magic", "unknown-dtype", "short-payload", "trailing", "zero-dims", "short-header", "two-bytes"],
)
@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_read_idx_rejects_broken_files_naming_them(tmp_path, content, complaint, compress):
    path = tmp_path / "broken-idx-file"
    path.write_bytes(gzip.compress(content) if compress else content)
    with pytest.raises(ValueError, match=complaint) as error:
        read_idx(path)
    assert str(path) in str(error.value)


def test_read_idx_rejects_a_cut_gzip_stream(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(GOOD)[:-12])
    with pytest.raises(ValueError, match="damaged gzip") as error:
        read_idx(path)
    assert str(path) in str(error.value)


# --------------------------------------------------------------------------
# load_mnist from IDX files


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_load_mnist_reads_a_folder_given_as_root(tmp_path, compress):
    folder = write_mnist_folder(tmp_path / "mnist", compress=compress)

    d = load_mnist(root=folder, verbose=False)

    # One in twelve of the 100 training images goes to validation.
    assert d.x_train.shape == (92, 784) and d.x_val.shape == (8, 784) and d.x_test.shape == (20, 784)
    for x in (d.x_train, d.x_val, d.x_test):
        assert x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1
    for y in (d.y_train, d.y_val, d.y_test):
        assert y.dtype == np.int64
    assert str(folder) in d.source
    # Every training image lands in exactly one split, with its own label and pixels.
    ids = np.rint(np.concatenate([d.x_train[:, 0], d.x_val[:, 0]]) * 255).astype(int)
    assert sorted(ids) == list(range(100))
    np.testing.assert_array_equal(np.concatenate([d.y_train, d.y_val]), ids % 10)
    images, _ = synthetic_digits(100)
    np.testing.assert_array_equal(np.rint(d.x_train * 255), images[ids[:92]].reshape(92, -1))
    # The test split keeps its file order.
    np.testing.assert_array_equal(np.rint(d.x_test[:, 0] * 255), np.arange(200, 220))


def test_load_mnist_reads_the_folder_in_the_environment_variable(tmp_path, monkeypatch, capsys):
    folder = write_mnist_folder(tmp_path / "shared", n_train=120, n_test=10, compress=True)
    monkeypatch.setenv(data.DATA_ENV, str(folder))

    d = load_mnist(flatten=False)

    assert d.x_train.shape == (110, 28, 28) and d.x_val.shape == (10, 28, 28) and d.x_test.shape == (10, 28, 28)
    assert capsys.readouterr().out.strip() == f"bnhelpers: {d.source}: 110 train / 10 validation / 10 test"


def test_load_mnist_reads_the_default_data_folder(tmp_path):
    write_mnist_folder(data.DATA_DIR / "mnist")
    d = load_mnist(verbose=False)
    assert d.x_test is not None and str(data.DATA_DIR / "mnist") in d.source


def test_load_mnist_fashion_reads_its_own_default_folder():
    write_mnist_folder(data.DATA_DIR / "fashion-mnist", n_train=24, n_test=5)
    d = load_mnist(dataset="fashion-mnist", verbose=False)
    assert len(d.y_train) + len(d.y_val) == 24 and "Fashion-MNIST" in d.source


@pytest.mark.parametrize("how", ["root", "env"])
def test_load_mnist_names_missing_files_and_folder(tmp_path, monkeypatch, how):
    folder = write_mnist_folder(tmp_path / "half")
    (folder / data.TEST_IMAGES).unlink()
    (folder / data.TEST_LABELS).unlink()
    if how == "env":
        monkeypatch.setenv(data.DATA_ENV, str(folder))

    with pytest.raises(FileNotFoundError) as error:
        load_mnist(root=folder if how == "root" else None, verbose=False)

    message = str(error.value)
    assert str(folder) in message and data.TEST_IMAGES in message and data.TEST_LABELS in message
    assert data.TRAIN_IMAGES not in message


def test_load_mnist_does_not_fall_back_from_an_empty_explicit_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing train-images"):
        load_mnist(root=tmp_path, verbose=False)


def test_load_mnist_does_not_fall_back_from_a_half_filled_default_folder():
    folder = data.DATA_DIR / "mnist"
    folder.mkdir(parents=True)
    write_idx(folder / data.TRAIN_IMAGES, synthetic_digits(5)[0])
    with pytest.raises(FileNotFoundError, match="default folder"):
        load_mnist(verbose=False)


def test_load_mnist_fashion_without_files_says_where_to_put_them():
    with pytest.raises(FileNotFoundError) as error:
        load_mnist(dataset="fashion-mnist", verbose=False)
    message = str(error.value)
    assert str(data.DATA_DIR / "fashion-mnist") in message and "no bundled Fashion-MNIST" in message


def test_load_mnist_rejects_images_and_labels_of_different_counts(tmp_path):
    folder = write_mnist_folder(tmp_path / "mnist")
    write_idx(folder / data.TRAIN_LABELS, synthetic_digits(99)[1])
    with pytest.raises(ValueError, match="100 images but .* 99 labels") as error:
        load_mnist(root=folder, verbose=False)
    assert data.TRAIN_IMAGES in str(error.value) and data.TRAIN_LABELS in str(error.value)


@pytest.mark.parametrize(
    "name, array, complaint",
    [
        (data.TRAIN_IMAGES, np.zeros((100, 28, 27), np.uint8), r"shape \(n, 28, 28\)"),
        (data.TRAIN_IMAGES, np.zeros((100, 28, 28), np.float32), "uint8"),
        (data.TEST_LABELS, np.full(20, 10, np.uint8), "0..9"),
        (data.TEST_LABELS, np.zeros((20, 1), np.uint8), r"shape \(n,\)"),
    ],
    ids=["27-columns", "float-images", "label-10", "2d-labels"],
)
def test_load_mnist_rejects_files_that_are_not_mnist(tmp_path, name, array, complaint):
    folder = write_mnist_folder(tmp_path / "mnist")
    write_idx(folder / name, array)
    with pytest.raises(ValueError, match=complaint) as error:
        load_mnist(root=folder, verbose=False)
    assert name in str(error.value)


def test_load_mnist_rejects_an_unknown_dataset():
    with pytest.raises(ValueError, match="kmnist"):
        load_mnist(dataset="kmnist")


def test_load_mnist_refuses_a_channel_axis_on_flat_images():
    with pytest.raises(ValueError, match=r"channel_axis=True needs flatten=False"):
        load_mnist(channel_axis=True)


# --------------------------------------------------------------------------
# The bundled subset


@pytest.fixture(scope="module")
def bundled():
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(data.DATA_ENV, raising=False)
        patch.setattr(data, "DATA_DIR", Path("/nonexistent/bnhelpers-test"))
        yield load_mnist(verbose=False)


def bundled_file():
    with np.load(data.BUNDLED_NPZ) as npz:
        return npz["images"], npz["labels"]


def rows(x):
    """The set of images in x (float pixels in [0, 1]), each as bytes of its uint8 pixels."""
    pixels = np.rint(np.asarray(x) * 255).astype(np.uint8)
    return {row.tobytes() for row in pixels.reshape(len(pixels), -1)}


def test_bundled_subset_is_the_file_readme_and_code_agree_on():
    digest = hashlib.sha256(data.BUNDLED_NPZ.read_bytes()).hexdigest()
    assert digest == data.BUNDLED_SHA256
    readme = (data.BUNDLED_NPZ.parent / "README.md").read_text()
    assert data.BUNDLED_SHA256 in readme
    images, labels = bundled_file()
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,) and labels.dtype == np.uint8


def test_bundled_split_shapes_and_types(bundled, capsys):
    assert bundled.x_train.shape == (8_000, 784) and bundled.x_val.shape == (2_000, 784)
    assert bundled.x_test is None and bundled.y_test is None
    assert bundled.x_train.dtype == np.float32 and bundled.y_train.dtype == np.int64
    assert bundled.x_train.min() >= 0 and bundled.x_train.max() <= 1
    assert "bundled" in bundled.source

    square = load_mnist(flatten=False)
    assert square.x_train.shape == (8_000, 28, 28) and square.x_val.shape == (2_000, 28, 28)
    channels = load_mnist(flatten=False, channel_axis=True, verbose=False)
    assert channels.x_train.shape == (8_000, 1, 28, 28) and channels.x_val.shape == (2_000, 1, 28, 28)
    np.testing.assert_array_equal(channels.x_train[:, 0], square.x_train)
    np.testing.assert_array_equal(channels.x_train.reshape(8_000, 784), bundled.x_train)
    assert "images (1, 28, 28)" in repr(channels)
    line = capsys.readouterr().out.strip()
    assert line.startswith("bnhelpers: bundled MNIST subset") and line.endswith("8,000 train / 2,000 validation")


def test_bundled_split_is_stratified(bundled):
    _, labels = bundled_file()
    per_class = np.bincount(labels, minlength=10)
    val = np.bincount(bundled.y_val, minlength=10)
    train = np.bincount(bundled.y_train, minlength=10)
    assert (val > 0).all() and (train > 0).all()
    np.testing.assert_array_equal(train + val, per_class)
    # Each class gets its fifth of the validation set, give or take the rounding.
    assert np.abs(val - per_class / 5).max() < 1


def test_bundled_split_partitions_the_file(bundled):
    images, _ = bundled_file()
    train, val = rows(bundled.x_train), rows(bundled.x_val)
    assert len(train) == 8_000 and len(val) == 2_000 and not train & val
    assert train | val == rows(images / 255)
    # Shuffled: the file is sorted by digit, the training split must not be.
    assert not (np.diff(bundled.y_train) >= 0).all()


def test_bundled_split_depends_on_the_seed_only(bundled):
    again = load_mnist(seed=0, verbose=False)
    np.testing.assert_array_equal(again.x_val, bundled.x_val)
    np.testing.assert_array_equal(again.y_train, bundled.y_train)
    other = load_mnist(seed=1, verbose=False)
    assert rows(other.x_val) != rows(bundled.x_val)


def test_bundled_digits_look_like_mnist(bundled):
    # MNIST's mean pixel is about 0.13 (0.1307 on the 60,000 training images).
    assert 0.12 < bundled.x_train.mean() < 0.14
    # Nearest class mean scores about 0.80 on these splits (0.80-0.81 for seeds
    # 0-4); noise or shuffled labels would score about 0.10.
    means = np.stack([bundled.x_train[bundled.y_train == c].mean(axis=0) for c in range(10)])
    distances = (bundled.x_val**2).sum(1)[:, None] - 2 * bundled.x_val @ means.T + (means**2).sum(1)
    accuracy = (distances.argmin(axis=1) == bundled.y_val).mean()
    assert accuracy > 0.75


def test_damaged_bundled_file_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "mnist-10k.npz"
    content = bytearray(data.BUNDLED_NPZ.read_bytes())
    content[len(content) // 2] ^= 0xFF
    copy.write_bytes(content)
    monkeypatch.setattr(data, "BUNDLED_NPZ", copy)
    with pytest.raises(ValueError, match="damaged") as error:
        load_mnist(verbose=False)
    assert str(copy) in str(error.value) and "build_mnist_10k.py" in str(error.value)


def test_missing_bundled_file_says_how_to_get_data(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "BUNDLED_NPZ", tmp_path / "mnist-10k.npz")
    with pytest.raises(FileNotFoundError, match="build_mnist_10k.py"):
        load_mnist(verbose=False)


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
    assert len(d.y_train) + len(d.y_val) == 24 and len(d.y_test) == 6


def test_download_prefers_no_corrupt_copy(tmp_path, server, files, checksums):
    serve_corrupt(server, files)
    serve_good(server, files)
    root = tmp_path / "mnist"

    download_mnist(root, mirrors=[server.url("corrupt"), server.url("good")], checksums=checksums, progress=False)

    for name in GZ_NAMES:
        assert (root / name).read_bytes() == files[name]
        assert server.requests.count(f"/corrupt/{name}") == 1 and server.requests.count(f"/good/{name}") == 1
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
    assert error.value.missing == failed and error.value.folder == root
    message = str(error.value)
    assert str(root) in message and good_name not in message
    for name in failed:
        assert name in message and checksums[name] in message
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

    assert len(server.requests) == 5 and server.count(GZ_NAMES[0]) == 2
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
    assert len(d.y_test) == 6 and str(data.DATA_DIR / "mnist") in d.source


def test_published_checksums_are_complete_sha256_digests():
    for dataset, sums in data.CHECKSUMS.items():
        assert sorted(sums) == sorted(GZ_NAMES), dataset
        assert all(re.fullmatch("[0-9a-f]{64}", value) for value in sums.values()), dataset
    assert set(data.MIRRORS) == set(data.CHECKSUMS) == set(data.DATASET_NAMES)


# --------------------------------------------------------------------------
# Hostile files, servers and concurrent calls (issue 12)


@pytest.mark.parametrize(
    "n_train, n_test, complaint",
    [(11, 5, r"holds 11 images; at least 12 are needed"), (24, 0, r"holds no images")],
)
def test_load_mnist_names_files_with_too_few_images(tmp_path, n_train, n_test, complaint):
    write_mnist_folder(tmp_path, n_train=n_train, n_test=n_test)
    with pytest.raises(ValueError, match=complaint):
        load_mnist(root=tmp_path, verbose=False)


def write_sparse_idx(path, declared_rows, file_bytes):
    """An IDX header for (declared_rows,) uint8 and its data, then zeros up to file_bytes (a sparse file)."""
    with open(path, "wb") as f:
        f.write(idx_bytes(np.arange(declared_rows, dtype=np.uint8)))
        f.truncate(file_bytes)
    return path


def write_gzip_bomb(path, inflated_mib):
    """A small valid IDX file (10 bytes of data) gzipped, followed by gzip members of 1 MiB of zeros each."""
    zeros_member = gzip.compress(bytes(1 << 20), mtime=0)
    with open(path, "wb") as f:
        f.write(gzip.compress(idx_bytes(np.arange(10, dtype=np.uint8)), mtime=0))
        for _ in range(inflated_mib):
            f.write(zeros_member)
    return path


@pytest.mark.skipif(not LINUX_ONLY, reason="uses /proc and RLIMIT_AS")
def test_read_idx_memory_is_bounded_by_the_declared_size(tmp_path):
    sparse = write_sparse_idx(tmp_path / "sparse-idx1-ubyte", 10, 6 << 30)  # 6 GiB on paper, nothing on disk
    bomb = write_gzip_bomb(tmp_path / "bomb-idx1-ubyte.gz", 1024)  # about 1 MB, inflates to 1 GiB
    assert bomb.stat().st_size < 2 << 20
    for path, complaint in ((sparse, "6,442,450,926 trailing bytes"), (bomb, "trailing bytes after the 10")):
        outcome = outcome_with_memory_limit(f"read_idx({str(path)!r})")
        assert outcome.startswith("ValueError:") and str(path) in outcome and complaint in outcome, outcome


def test_read_idx_refuses_declarations_larger_than_the_file_can_hold(tmp_path):
    raw = tmp_path / "short-idx3-ubyte"
    raw.write_bytes(idx_bytes(np.zeros((1, 1, 1), np.uint8))[:4] + struct.pack(">3I", 60_000, 4096, 4096))
    with pytest.raises(ValueError, match=r"truncated: 0 data bytes, 1,006,632,960,000 expected"):
        read_idx(raw)
    gz = tmp_path / "short-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(raw.read_bytes()))
    with pytest.raises(
        ValueError,
        match=r"declares 1,006,632,960,000 data bytes .* more than \d+ bytes of gzip data can hold",
    ):
        read_idx(gz)


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
        except Exception as err:  # noqa: BLE001 - reported by the assert below
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
        assert (root / name).read_bytes() == files[name] and not (root / name).is_symlink()
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
    "kwargs, error, message",
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
        if not folder.is_dir() or os.access(folder, os.W_OK) and not _creation_fails(folder):
            pytest.skip("no folder that refuses new files to root")
    else:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
    with pytest.raises(DownloadError, match=r"Cannot write into .*nothing was downloaded") as error:
        download_mnist(folder, mirrors=[server.url("good")], checksums=checksums, progress=False)
    assert error.value.missing == GZ_NAMES and server.requests == []


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
