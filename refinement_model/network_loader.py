"""How checkpoint files become networks ready to run: one place that chooses the backend and
the ONNX cache, handed to whoever builds networks (projects, the app).

Torch-free until a network is built, so that a caller can hold a loader without importing
PyTorch (reopening a project builds none).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from refinement_model.refiner_options import RefinerOptions

__all__ = ["NetworkLoader", "app_loader", "user_cache_folder"]


def user_cache_folder() -> Path:
    """The documented folder for :class:`~refinement_model.onnx_export.OnnxCache`:
    ``$XDG_CACHE_HOME/etmira/onnx``, by default ``~/.cache/etmira/onnx``."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "etmira" / "onnx"


@dataclasses.dataclass(frozen=True)
class NetworkLoader:
    """Builds the base model's predictor and refiners of checkpoint files, all on one backend.

    Parameters
    ----------
    backend : {"auto", "onnx", "torchscript", "eager", "cuda"}, optional
        See :class:`~refinement_model.fast_net.FastNet` ("eager" runs eager PyTorch: no export,
        no trace).
    onnx_cache : str or os.PathLike, optional
        Folder for the networks' ONNX exports (see
        :class:`~refinement_model.onnx_export.OnnxCache`); default: export in memory.
    """

    backend: str = "auto"
    onnx_cache: str | os.PathLike | None = None

    def predictor(self, checkpoint):
        """The :class:`~refinement_model.prediction.Predictor` of a base checkpoint."""
        from refinement_model.prediction import Predictor  # torch: see the module docstring

        return Predictor(checkpoint, backend=self.backend, onnx_cache=self.onnx_cache)

    def refiner(self, checkpoint, options: RefinerOptions):
        """The :class:`~refinement_model.patch_refiner.PatchRefiner` of a refiner checkpoint,
        refining with ``options``."""
        from refinement_model.patch_refiner import PatchRefiner  # torch, as above

        return PatchRefiner(
            checkpoint, options=options, backend=self.backend, onnx_cache=self.onnx_cache
        )


def app_loader() -> NetworkLoader:
    """The app's loader: the backend chosen automatically, the ONNX exports kept in
    :func:`user_cache_folder` (resolved now), so that a second start exports nothing."""
    return NetworkLoader(onnx_cache=user_cache_folder())
