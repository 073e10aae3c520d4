"""``ADAPTERKIT_MALLOC`` pins glibc's mmap threshold in a CPU run's process (measure.cpu_allocator), or leaves
glibc's dynamic threshold alone (the default): checked in a fresh interpreter, where the call really reaches libc."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = "from adapterkit import measure; print(measure.cpu_allocator())"


@pytest.mark.parametrize("value, pinned", [(None, "None"), ("glibc", "None"), ("steady", str(2**20)),
                                           ("4", str(4 * 2**20)), ("0.5", str(2**19))])
def test_the_setting_reaches_the_allocator(value, pinned):
    env = {k: v for k, v in os.environ.items() if k != "ADAPTERKIT_MALLOC"}
    if value is not None:
        env["ADAPTERKIT_MALLOC"] = value
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == pinned
