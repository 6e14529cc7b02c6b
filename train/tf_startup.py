"""Keep TensorFlow's start-up banner off stderr, without changing what it computes.

``TF_CPP_MIN_LOG_LEVEL=2``, set before TensorFlow loads, drops its C++ INFO and WARNING lines (the
"rebuild TensorFlow with the appropriate compiler flags" one among them). TensorFlow 2.21 prints two
lines, once per native library it loads, before absl's logging is set up, where no level reaches:

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796161940.895329   10479 port.cc:153] oneDNN custom operations are on. You may ...

``TF_ENABLE_ONEDNN_OPTS=0`` would drop the second by turning oneDNN off, which changes the numbers.
Instead, the first ``import tensorflow``, wherever it happens (``import keras`` does it too), runs
under emocam.edge.native_stderr with exactly these lines dropped; anything else it prints is kept.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
from collections.abc import MutableMapping, Sequence
from types import ModuleType

from emocam.edge.native_stderr import routed_stderr

BANNER = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on\. .*"
)


def quiet_tensorflow_startup(environ: MutableMapping[str, str] = os.environ) -> None:
    """Call in an entry point before anything imports TensorFlow; a user's TF_CPP_MIN_LOG_LEVEL wins."""
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _FirstImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _FirstImport())


class _FirstImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` the usual way, once, and hands back its spec with a banner-dropping loader."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # later imports find the loaded module; the libraries load once
        spec = importlib.util.find_spec(fullname)
        if spec is not None and isinstance(spec.loader, importlib.abc.Loader):
            spec.loader = _DroppingBanner(spec.loader)
        return spec


class _DroppingBanner(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with routed_stderr(lambda line: BANNER.fullmatch(line) is not None):
            self._loader.exec_module(module)

    def __getattr__(self, name: str) -> object:  # get_resource_reader, is_package, ...: the real loader's
        return getattr(self._loader, name)
