"""The package itself (``dispatch/__init__.py``): importing it touches no broker."""

from __future__ import annotations

import subprocess
import sys

import dispatch


def test_import_dispatch_alone_touches_no_broker():
    code = "import sys, dispatch; print('dispatch.tasks' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False"
    assert dispatch.__version__
