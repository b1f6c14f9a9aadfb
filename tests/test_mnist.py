"""Tests for bnhelpers.storage.mnist: IDX reading, load_mnist's sources and splits, hostile files."""

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
from helpers import idx_bytes, synthetic_digits, write_idx, write_mnist_folder
from memory_limit import LINUX_ONLY, outcome_with_memory_limit

from bnhelpers.storage import mnist as mnist_module
from bnhelpers.storage.mnist import load_mnist, read_idx

pytestmark = pytest.mark.usefixtures("no_data_from_the_machine")


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
    ("content", "complaint"),
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
    assert d.x_train.shape == (92, 784)
    assert d.x_val.shape == (8, 784)
    assert d.x_test.shape == (20, 784)
    for x in (d.x_train, d.x_val, d.x_test):
        assert x.dtype == np.float32
        assert x.min() >= 0
        assert x.max() <= 1
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
    monkeypatch.setenv(mnist_module.DATA_ENV, str(folder))

    d = load_mnist(flatten=False)

    assert d.x_train.shape == (110, 28, 28)
    assert d.x_val.shape == (10, 28, 28)
    assert d.x_test.shape == (10, 28, 28)
    assert capsys.readouterr().out.strip() == f"bnhelpers: {d.source}: 110 train / 10 validation / 10 test"


def test_load_mnist_reads_the_default_data_folder(tmp_path):
    write_mnist_folder(mnist_module.DATA_DIR / "mnist")
    d = load_mnist(verbose=False)
    assert d.x_test is not None
    assert str(mnist_module.DATA_DIR / "mnist") in d.source


def test_load_mnist_fashion_reads_its_own_default_folder():
    write_mnist_folder(mnist_module.DATA_DIR / "fashion-mnist", n_train=24, n_test=5)
    d = load_mnist(dataset="fashion-mnist", verbose=False)
    assert len(d.y_train) + len(d.y_val) == 24
    assert "Fashion-MNIST" in d.source


@pytest.mark.parametrize("how", ["root", "env"])
def test_load_mnist_names_missing_files_and_folder(tmp_path, monkeypatch, how):
    folder = write_mnist_folder(tmp_path / "half")
    (folder / mnist_module.TEST_IMAGES).unlink()
    (folder / mnist_module.TEST_LABELS).unlink()
    if how == "env":
        monkeypatch.setenv(mnist_module.DATA_ENV, str(folder))

    with pytest.raises(FileNotFoundError) as error:
        load_mnist(root=folder if how == "root" else None, verbose=False)

    message = str(error.value)
    assert str(folder) in message
    assert mnist_module.TEST_IMAGES in message
    assert mnist_module.TEST_LABELS in message
    assert mnist_module.TRAIN_IMAGES not in message


def test_load_mnist_does_not_fall_back_from_an_empty_explicit_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing train-images"):
        load_mnist(root=tmp_path, verbose=False)


def test_load_mnist_does_not_fall_back_from_a_half_filled_default_folder():
    folder = mnist_module.DATA_DIR / "mnist"
    folder.mkdir(parents=True)
    write_idx(folder / mnist_module.TRAIN_IMAGES, synthetic_digits(5)[0])
    with pytest.raises(FileNotFoundError, match="default folder"):
        load_mnist(verbose=False)


def test_load_mnist_fashion_without_files_says_where_to_put_them():
    with pytest.raises(FileNotFoundError) as error:
        load_mnist(dataset="fashion-mnist", verbose=False)
    message = str(error.value)
    assert str(mnist_module.DATA_DIR / "fashion-mnist") in message
    assert "no bundled Fashion-MNIST" in message


def test_load_mnist_rejects_images_and_labels_of_different_counts(tmp_path):
    folder = write_mnist_folder(tmp_path / "mnist")
    write_idx(folder / mnist_module.TRAIN_LABELS, synthetic_digits(99)[1])
    with pytest.raises(ValueError, match=r"100 images but .* 99 labels") as error:
        load_mnist(root=folder, verbose=False)
    assert mnist_module.TRAIN_IMAGES in str(error.value)
    assert mnist_module.TRAIN_LABELS in str(error.value)


@pytest.mark.parametrize(
    ("name", "array", "complaint"),
    [
        (mnist_module.TRAIN_IMAGES, np.zeros((100, 28, 27), np.uint8), r"shape \(n, 28, 28\)"),
        (mnist_module.TRAIN_IMAGES, np.zeros((100, 28, 28), np.float32), "uint8"),
        (mnist_module.TEST_LABELS, np.full(20, 10, np.uint8), "0..9"),
        (mnist_module.TEST_LABELS, np.zeros((20, 1), np.uint8), r"shape \(n,\)"),
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
        patch.delenv(mnist_module.DATA_ENV, raising=False)
        patch.setattr(mnist_module, "DATA_DIR", Path("/nonexistent/bnhelpers-test"))
        yield load_mnist(verbose=False)


def bundled_file():
    with np.load(mnist_module.BUNDLED_NPZ) as npz:
        return npz["images"], npz["labels"]


def rows(x):
    """The set of images in x (float pixels in [0, 1]), each as bytes of its uint8 pixels."""
    pixels = np.rint(np.asarray(x) * 255).astype(np.uint8)
    return {row.tobytes() for row in pixels.reshape(len(pixels), -1)}


def test_bundled_subset_is_the_file_readme_and_code_agree_on():
    digest = hashlib.sha256(mnist_module.BUNDLED_NPZ.read_bytes()).hexdigest()
    assert digest == mnist_module.BUNDLED_SHA256
    readme = (mnist_module.BUNDLED_NPZ.parent / "README.md").read_text()
    assert mnist_module.BUNDLED_SHA256 in readme
    images, labels = bundled_file()
    assert images.shape == (10_000, 28, 28)
    assert images.dtype == np.uint8
    assert labels.shape == (10_000,)
    assert labels.dtype == np.uint8


def test_bundled_split_shapes_and_types(bundled, capsys):
    assert bundled.x_train.shape == (8_000, 784)
    assert bundled.x_val.shape == (2_000, 784)
    assert bundled.x_test is None
    assert bundled.y_test is None
    assert bundled.x_train.dtype == np.float32
    assert bundled.y_train.dtype == np.int64
    assert bundled.x_train.min() >= 0
    assert bundled.x_train.max() <= 1
    assert "bundled" in bundled.source

    square = load_mnist(flatten=False)
    assert square.x_train.shape == (8_000, 28, 28)
    assert square.x_val.shape == (2_000, 28, 28)
    channels = load_mnist(flatten=False, channel_axis=True, verbose=False)
    assert channels.x_train.shape == (8_000, 1, 28, 28)
    assert channels.x_val.shape == (2_000, 1, 28, 28)
    np.testing.assert_array_equal(channels.x_train[:, 0], square.x_train)
    np.testing.assert_array_equal(channels.x_train.reshape(8_000, 784), bundled.x_train)
    assert "images (1, 28, 28)" in repr(channels)
    line = capsys.readouterr().out.strip()
    assert line.startswith("bnhelpers: bundled MNIST subset")
    assert line.endswith("8,000 train / 2,000 validation")


def test_bundled_split_is_stratified(bundled):
    _, labels = bundled_file()
    per_class = np.bincount(labels, minlength=10)
    val = np.bincount(bundled.y_val, minlength=10)
    train = np.bincount(bundled.y_train, minlength=10)
    assert (val > 0).all()
    assert (train > 0).all()
    np.testing.assert_array_equal(train + val, per_class)
    # Each class gets its fifth of the validation set, give or take the rounding.
    assert np.abs(val - per_class / 5).max() < 1


def test_bundled_split_partitions_the_file(bundled):
    images, _ = bundled_file()
    train, val = rows(bundled.x_train), rows(bundled.x_val)
    assert len(train) == 8_000
    assert len(val) == 2_000
    assert not train & val
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
    content = bytearray(mnist_module.BUNDLED_NPZ.read_bytes())
    content[len(content) // 2] ^= 0xFF
    copy.write_bytes(content)
    monkeypatch.setattr(mnist_module, "BUNDLED_NPZ", copy)
    with pytest.raises(ValueError, match="damaged") as error:
        load_mnist(verbose=False)
    assert str(copy) in str(error.value)
    assert "build_mnist_10k.py" in str(error.value)


def test_missing_bundled_file_says_how_to_get_data(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist_module, "BUNDLED_NPZ", tmp_path / "mnist-10k.npz")
    with pytest.raises(FileNotFoundError, match=r"build_mnist_10k\.py"):
        load_mnist(verbose=False)


# --------------------------------------------------------------------------
# Hostile files, servers and concurrent calls (issue 12)


@pytest.mark.parametrize(
    ("n_train", "n_test", "complaint"),
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
        assert outcome.startswith("ValueError:"), outcome
        assert str(path) in outcome, outcome
        assert complaint in outcome, outcome


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


def test_the_data_folder_is_found_from_inside_the_storage_subpackage():
    """bnhelpers/storage/mnist.py finds the checkout's data/ three folders up, where the bundled file is."""
    repository = Path(__file__).resolve().parents[1]
    assert mnist_module.REPOSITORY == repository
    assert mnist_module.BUNDLED_NPZ == repository / "data" / "mnist-10k.npz"
    assert mnist_module.BUNDLED_NPZ.is_file()
