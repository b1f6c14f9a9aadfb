"""`make submit`: write submission.zip with the files you edit and a manifest.

Only the files listed in RELEASE.json are packed (your bnhelpers modules and
the notebooks with answer cells); the manifest records the release version
and each file's SHA-256, so that the grader can tell which release you
worked on. Standard library only: it runs without the course's venv.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # the same files give the same zip, byte for byte


def main():
    release = json.loads((ROOT / "RELEASE.json").read_text())
    missing = [path for path in release["student_files"] if not (ROOT / path).is_file()]
    if missing:
        print(f"cannot submit: missing {', '.join(missing)} (restore them from the release)")
        return 1
    files = {path: (ROOT / path).read_bytes() for path in release["student_files"]}
    manifest = {
        "release": release["version"],
        "files": {path: hashlib.sha256(data).hexdigest() for path, data in files.items()},
    }
    target = ROOT / "submission.zip"
    # Written to a unique temporary file and renamed: an interrupted run never leaves half a zip.
    fd, tmp = tempfile.mkstemp(prefix=".submission-", suffix=".zip", dir=ROOT)
    try:
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
            for path, data in [*sorted(files.items()), ("manifest.json", json.dumps(manifest, indent=1).encode())]:
                zf.writestr(zipfile.ZipInfo(path, FIXED_TIME), data, zipfile.ZIP_DEFLATED)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"wrote {target.name}: {len(files)} files for release {release['version']}; hand it in as it is")
    return 0


if __name__ == "__main__":
    sys.exit(main())
