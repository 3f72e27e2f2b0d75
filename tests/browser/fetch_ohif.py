"""Brings OHIF Viewer's prebuilt ``dist/`` from the npm registry into ``.ohif/`` at the top of the checkout,
once: a later run finds it there and downloads nothing. ``tests/run`` calls it; the browser test only
looks for the result, so a missing viewer fails the test rather than fetching behind its back.

    python -m tests.browser.fetch_ohif
"""
from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
OHIF_VERSION = "3.13.2"
# The registry's own integrity for that version: a tarball that differs is not what the test was written
# against, whatever npm's cache or a mirror says.
OHIF_INTEGRITY = "sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=="
CACHE = REPO / ".ohif"
OHIF_DIST = CACHE / f"app-{OHIF_VERSION}" / "dist"


def _integrity(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as tarball:
        for block in iter(lambda: tarball.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def fetch(target: Path = OHIF_DIST) -> Path:
    if (target / "index.html").is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is not installed (apt-get install npm)")
    CACHE.mkdir(exist_ok=True)
    # Unpacked next to its final place and renamed in one step, so an interrupted run never leaves a
    # half-filled dist/ that the next run would take for complete.
    with tempfile.TemporaryDirectory(dir=CACHE, prefix=".fetch-") as scratch:
        work = Path(scratch)
        subprocess.run([npm, "pack", "--silent", "--ignore-scripts", "--pack-destination", str(work),
                        f"@ohif/app@{OHIF_VERSION}"], check=True, stdout=subprocess.DEVNULL)
        [tarball] = work.glob("*.tgz")
        if (found := _integrity(tarball)) != OHIF_INTEGRITY:
            raise SystemExit(f"@ohif/app@{OHIF_VERSION}: integrity {found}, expected {OHIF_INTEGRITY}")
        with tarfile.open(tarball) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith("package/dist/")]
            # The "data" filter (nothing outside the folder, no links out, no device files) exists from
            # Python 3.11.4 on; the tarball is the one whose digest was checked either way.
            if hasattr(tarfile, "data_filter"):
                archive.extractall(work, members=members, filter="data")
            else:
                archive.extractall(work, members=members)
        target.parent.mkdir(exist_ok=True)
        (work / "package" / "dist").rename(target)
    return target


if __name__ == "__main__":
    fetch()
