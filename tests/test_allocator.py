"""``ADAPTERKIT_MALLOC`` pins glibc's mmap threshold in a CPU run's process (measure.pin_mmap_threshold), or leaves
glibc's dynamic threshold alone (the default): checked in a fresh interpreter, where the call really reaches libc."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

PROBE = "from adapterkit import measure; t = measure.allocator_setting(); print(t, measure.pin_mmap_threshold(t))"
GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.parametrize("value, printed", [(None, "None False"), ("glibc", "None False"),
                                            ("steady", f"{2**20} {GLIBC}"), ("4", f"{4 * 2**20} {GLIBC}"),
                                            ("0.5", f"{2**19} {GLIBC}")])
def test_the_setting_reaches_the_allocator(value, printed):
    env = {k: v for k, v in os.environ.items() if k != "ADAPTERKIT_MALLOC"}
    if value is not None:
        env["ADAPTERKIT_MALLOC"] = value
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == printed, done.stderr
