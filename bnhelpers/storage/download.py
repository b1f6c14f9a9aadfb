"""Verified downloading of the MNIST (and Fashion-MNIST) files.

download_mnist() fetches the four .gz IDX files from known mirrors into the
folder load_mnist() reads (storage/mnist.py) and keeps only files whose
SHA-256 matches the published one.

Hostile or broken servers are expected: downloads are capped at the
published file sizes and by a deadline per file, nothing replaces an
existing file unless it verifies, and several download_mnist() calls may
share a folder (see download_mnist).
"""

import hashlib
import socket
import tempfile
import threading
import urllib.request
from contextlib import contextmanager, suppress
from http.client import HTTPException
from pathlib import Path
from typing import NamedTuple

from tqdm.auto import tqdm

from .._checks import check_positive
from ..progress import progress_enabled
from .files import replacing
from .mnist import DATASET_NAMES, IDX_FILES, default_folder

__all__ = ["DownloadError", "download_mnist"]

MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    # Plain http is safe enough here: nothing is kept unless its SHA-256 matches.
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
}


class Published(NamedTuple):
    """What a file's publisher states about it: its SHA-256 (hex) and its size in bytes."""

    sha256: str
    size: int


# Each .gz file as TensorFlow Datasets publishes it
# (tensorflow_datasets/url_checksums/mnist.txt and fashion_mnist.txt).
PUBLISHED = {
    "mnist": {
        "train-images-idx3-ubyte.gz": Published(
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9_912_422
        ),
        "train-labels-idx1-ubyte.gz": Published(
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28_881
        ),
        "t10k-images-idx3-ubyte.gz": Published(
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1_648_877
        ),
        "t10k-labels-idx1-ubyte.gz": Published(
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4_542
        ),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": Published(
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26_421_880
        ),
        "train-labels-idx1-ubyte.gz": Published(
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29_515
        ),
        "t10k-images-idx3-ubyte.gz": Published(
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4_422_102
        ),
        "t10k-labels-idx1-ubyte.gz": Published(
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5_148
        ),
    },
}
# A download with other checksums (another copy, a test) is capped at the largest published size.
LARGEST_SIZE = max(file.size for files in PUBLISHED.values() for file in files.values())

CHUNK_BYTES = 1 << 16


class DownloadError(RuntimeError):
    """download_mnist() could not get some files from any mirror.

    The message lists each missing file with its expected SHA-256 and why
    every mirror failed. Attributes: missing (the file names not obtained)
    and folder (where they belong).
    """

    def __init__(self, message, missing, folder):
        super().__init__(message)
        self.missing = missing
        self.folder = folder


def download_mnist(
    root=None, *, dataset="mnist", mirrors=None, checksums=None, progress=True, timeout=30.0, deadline=600.0
):
    """Fetch the four .gz IDX files of MNIST (or Fashion-MNIST) into `root`.

    root:      target folder, created if needed; default the repository's
               data/mnist/ (data/fashion-mnist/), where load_mnist() looks.
    dataset:   "mnist" or "fashion-mnist".
    mirrors:   base URLs to try in order (default MIRRORS[dataset]); the file
               name is appended to each.
    checksums: {file name: SHA-256 hex digest} for the four .gz files
               (default: the published values in PUBLISHED[dataset]).
    progress:  show a progress bar per file; $BNHELPERS_PROGRESS=0 turns it
               off too.
    timeout:   seconds to wait on a silent connection before giving up on it.
    deadline:  seconds a mirror gets for a whole file, however it trickles.

    A file already in root whose SHA-256 matches is not fetched again. Each
    other file is streamed into a new temporary file of its own in root
    (created exclusively, so a file or symlink planted there is never
    followed), at most the file's published size (PUBLISHED; the largest of
    them for other checksums); its SHA-256 is computed from what was written to
    disk, and only a match is renamed into place. On any failure (HTTP error,
    refused connection, timeout, deadline, oversized or short body, wrong
    checksum) the temporary file is deleted and the next mirror is tried. An
    existing file is therefore never replaced by anything but a verified one,
    and several calls (threads or processes) may download into the same
    folder at once: each ends with verified files.

    Returns the paths of the four files. Raises DownloadError (a RuntimeError)
    naming every file no mirror could provide, the folder to put it in by
    hand, its expected SHA-256, each mirror's failure and any damaged copy
    left in place; or, before any request, if the folder is not writable.
    """
    if dataset not in DATASET_NAMES:
        raise ValueError(f"dataset must be one of {sorted(DATASET_NAMES)}, not {dataset!r}")
    folder = default_folder(dataset) if root is None else Path(root).expanduser()
    if isinstance(mirrors, str):
        raise TypeError("mirrors must be a list of base URLs, not one string")
    mirrors = MIRRORS[dataset] if mirrors is None else tuple(mirrors)
    if not mirrors:
        raise ValueError("mirrors must name at least one base URL")
    published = PUBLISHED[dataset]
    checksums = {name: file.sha256 for name, file in published.items()} if checksums is None else checksums
    names = [f"{name}.gz" for name in IDX_FILES]
    if any(name not in checksums for name in names):
        raise ValueError(f"checksums must give a SHA-256 for each of {names}")
    timeout = check_positive("timeout", timeout)
    deadline = check_positive("deadline", deadline)
    show_progress = progress_enabled(progress)

    folder.mkdir(parents=True, exist_ok=True)
    damaged = {}  # name: SHA-256 of a copy in root that does not verify
    for name in names:
        if (folder / name).is_file():
            digest = _sha256_of_file(folder / name)
            if digest != checksums[name]:
                damaged[name] = digest
    needed = [name for name in names if not (folder / name).is_file() or name in damaged]
    if needed:
        _check_writable(folder, needed, dataset)
    failures = {}
    for name in needed:
        limit = published[name].size if checksums[name] == published[name].sha256 else LARGEST_SIZE
        reasons = _download_from_mirrors(
            name, folder, mirrors, checksums[name], limit, show_progress, timeout, deadline
        )
        if reasons:
            if name in damaged:
                reasons.append(
                    f"the copy already in {folder} (SHA-256 {damaged[name]}) is damaged or another version; "
                    "it was left as it is"
                )
            failures[name] = reasons
    if failures:
        raise DownloadError(_download_failure_message(failures, folder, checksums, dataset), list(failures), folder)
    return [folder / name for name in names]


def _check_writable(folder, needed, dataset):
    """Fail before any request if no file can be created in folder."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise DownloadError(
            f"Cannot write into {folder} ({err}), so nothing was downloaded. Pass root= a writable folder "
            f"(and load_mnist(root=...) the same), or make this one writable.",
            needed,
            folder,
        ) from err


def _download_from_mirrors(name, folder, mirrors, expected_sha256, limit, show_progress, timeout, deadline):
    """Try each mirror until one gives a verified copy of `name`.

    Returns [] on success, else one 'url: reason' line per mirror.
    """
    reasons = []
    for mirror in mirrors:
        url = mirror if mirror.endswith("/") else mirror + "/"
        url += name
        try:
            with replacing(folder / name, suffix=".part") as part:
                _fetch(url, part, name, limit, show_progress, timeout, deadline)
                digest = _sha256_of_stream(part)  # the bytes on disk, which are what gets renamed
                if digest != expected_sha256:
                    raise ValueError(f"SHA-256 is {digest}, expected {expected_sha256}")
            return []
        # URLError, HTTPError, refused connections, timeouts and short reads are
        # all OSErrors; ValueError covers a malformed URL, an oversized body and
        # a wrong checksum.
        except (OSError, HTTPException, ValueError) as err:
            reasons.append(f"{url}: {err}")
    # Another call downloading into the same folder may have put a verified copy there meanwhile.
    if (folder / name).is_file() and _sha256_of_file(folder / name) == expected_sha256:
        return []
    return reasons


def _fetch(url, out, label, limit, show_progress, timeout, deadline):
    """Stream `url` into the open file `out`: at most `limit` bytes, all within `deadline` seconds."""
    received = 0
    with _open_within(url, timeout, deadline) as response:
        length = response.headers.get("Content-Length")
        expected = int(length) if length else None
        if expected is not None and expected > limit:
            raise ValueError(f"the server announces {expected:,} bytes; this file has at most {limit:,}")
        with tqdm(
            total=expected,
            desc=label,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=not show_progress,
        ) as bar:
            # read1 returns whatever has arrived; at the deadline the connection is shut and it returns b"".
            while chunk := response.read1(CHUNK_BYTES):
                received += len(chunk)
                if received > limit:
                    raise ValueError(f"the server sent more than {limit:,} bytes, the most this file has")
                out.write(chunk)
                bar.update(len(chunk))
    # http.client returns a short body without complaint when the server
    # closes early, so the length has to be checked here.
    if expected is not None and received != expected:
        raise ConnectionError(f"connection closed after {received:,} of {expected:,} bytes")


class _RecordSockets:
    """urllib handler mixin: records the socket of every connection it opens (redirects included) in .sockets."""

    def do_open(self, http_class, req, **kwargs):
        sockets = self.sockets

        class Recorded(http_class):
            def connect(self):
                super().connect()
                sockets.append(self.sock)

        return super().do_open(Recorded, req, **kwargs)


class _HTTPHandler(_RecordSockets, urllib.request.HTTPHandler):
    pass


class _HTTPSHandler(_RecordSockets, urllib.request.HTTPSHandler):
    pass


@contextmanager
def _open_within(url, timeout, deadline):
    """urlopen(url, timeout=timeout) as a context, with every stage bounded by `deadline` seconds in all.

    `timeout` only bounds each wait for the next bytes, so a server that drips its
    status line, headers or body a byte at a time would never trip it. At the
    deadline a timer shuts the connection's sockets down: the pending read
    returns, and the attempt ends with TimeoutError.
    """
    handlers = [_HTTPHandler(), _HTTPSHandler()]
    sockets = handlers[0].sockets = handlers[1].sockets = []
    expired = threading.Event()

    def expire():
        expired.set()
        for sock in list(sockets):
            with suppress(OSError):  # closed already
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(deadline, expire)
    timer.daemon = True
    timer.start()
    try:
        with urllib.request.build_opener(*handlers).open(url, timeout=timeout) as response:
            yield response
        if expired.is_set():
            raise TimeoutError(f"not complete after the {deadline:g} s deadline")
    except (OSError, HTTPException) as err:
        if expired.is_set() and not isinstance(err, TimeoutError):
            raise TimeoutError(f"not complete after the {deadline:g} s deadline") from err
        raise
    finally:
        timer.cancel()


def _sha256_of_stream(stream):
    stream.flush()
    stream.seek(0)
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK_BYTES):
        digest.update(chunk)
    return digest.hexdigest()


def _sha256_of_file(path):
    with open(path, "rb") as stream:
        return _sha256_of_stream(stream)


def _download_failure_message(failures, folder, checksums, dataset):
    lines = [
        f"Could not download {len(failures)} of the 4 {DATASET_NAMES[dataset]} files into {folder}.",
        "Put them there by hand (from any mirror); each must have the SHA-256 shown:",
    ]
    for name, reasons in failures.items():
        lines.append(f"  {name}  SHA-256 {checksums[name]}")
        lines.extend(f"    {reason}" for reason in reasons)
    return "\n".join(lines)
