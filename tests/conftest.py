"""Suite-wide settings: headless Qt, no GPU, quiet plotting, a private cache folder."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("MPLBACKEND", "Agg")
# projects cache their ONNX exports in the user's cache folder: not the real one in tests
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="etmira-test-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], ignore_errors=True)
