"""The compose set-up's second stamp is generated from the first (docker/second-stamp.py): the
checked-in files must be what the generator writes from the current docker-compose.yml."""

import subprocess
import sys

from stamp import REPO


def test_second_stamp_files_are_current():
    out = subprocess.run(
        [sys.executable, str(REPO / "docker" / "second-stamp.py"), "--check"],
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr.decode()
