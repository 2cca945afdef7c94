"""Single-patch refinement: a refiner network over a patch, its base logits and its strokes.

:class:`PatchRefiner` loads a refiner checkpoint on a :class:`~refinement_model.fast_net.FastNet`
and refines with the :class:`~refinement_model.refiner_options.RefinerOptions` it is given;
:func:`refine_iteratively` is the repeated refinement, the same NumPy code for every backend.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable

import numpy as np

from refinement_model.fast_net import FastNet, checkpoint_net
from refinement_model.model_spec import stack_refiner_input
from refinement_model.refiner_options import ONE_PASS, RefinerOptions, checked_iterations

__all__ = ["PatchRefiner", "refine_iteratively"]


def refine_iteratively(
    forward: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    base_logits: np.ndarray,
    strokes: np.ndarray,
    iterations: int,
) -> np.ndarray:
    """Refined logits, refined ``iterations`` times: each refinement's logits replace the base
    logits as the prediction input of the next, with the same strokes.

    Parameters
    ----------
    forward : callable
        The refiner: stacked inputs (B, C + 2, S, S) float32 ndarray -> logits (B, S, S).
    images : (B, C, S, S) float32 ndarray
    base_logits, strokes : (B, S, S) float32 ndarrays
    iterations : int
        At least 1.

    Returns
    -------
    logits : (B, S, S) float32 ndarray
    """
    logits = np.asarray(base_logits, dtype=np.float32)
    for _ in range(checked_iterations(iterations)):
        logits = forward(stack_refiner_input(images, logits, strokes))
    return logits


class PatchRefiner:
    """Single-patch refinement for the app and the simulation.

    Parameters
    ----------
    checkpoint : str or os.PathLike or torch.nn.Module
        A refiner checkpoint, or a refiner network in memory (e.g. during training).
    options : RefinerOptions, optional
        Orientations averaged (see :class:`~refinement_model.fast_net.FastNet`; the refiner was
        trained on all eight) and refinements per call; default one pass.
    optimise : bool, optional
        False runs eager PyTorch (see :class:`~refinement_model.fast_net.FastNet`).
    backend : {"auto", "onnx", "torchscript", "eager", "cuda"}, optional
        See :class:`~refinement_model.fast_net.FastNet`.
    onnx_cache : str or os.PathLike, optional
        A folder for the ONNX export of the checkpoint file (see
        :class:`~refinement_model.prediction.Predictor`).

    Attributes
    ----------
    options : RefinerOptions
    path : str or None
        The checkpoint file; None for a network in memory.
    preview : PatchRefiner or None
        With several orientations or iterations, the same refiner in one pass (sharing the
        network): the app shows its result at once and the full one when it is ready.

    Examples
    --------
    ``refined = PatchRefiner("refiner.safetensors").refine(image, base_logits, strokes)``
    """

    def __init__(
        self,
        checkpoint,
        *,
        options: RefinerOptions = ONE_PASS,
        optimise: bool = True,
        backend: str = "auto",
        onnx_cache=None,
    ):
        if isinstance(checkpoint, str | os.PathLike):
            self.net, self.metadata = checkpoint_net(
                checkpoint,
                "refiner",
                optimise=optimise,
                orientations=options.orientations,
                backend=backend,
                onnx_cache=onnx_cache,
            )
            self.path = os.fspath(checkpoint)
        else:
            if onnx_cache is not None:
                raise ValueError("onnx_cache needs a checkpoint file, got a network in memory")
            self.metadata, self.path = {}, None
            self.net = FastNet(
                checkpoint,
                optimise=optimise,
                orientations=options.orientations,
                backend=backend,
            )
        self._set_up(options)

    @classmethod
    def from_net(cls, net: FastNet, *, options: RefinerOptions = ONE_PASS) -> PatchRefiner:
        """A PatchRefiner of a refiner network already on a backend (its orientations are
        ``options``'), with no checkpoint file; net size 256."""
        refiner = cls.__new__(cls)
        refiner.net, refiner.metadata, refiner.path = net, {}, None
        refiner._set_up(options)
        return refiner

    def _set_up(self, options: RefinerOptions) -> None:
        if self.net.spec.kind != "refiner":
            raise ValueError(f"checkpoint must be a refiner network, got a {self.net.spec.kind}")
        self.net_size = int(self.metadata.get("net_size", 256))
        self.options = options
        if self.net.orientations != options.orientations:
            self.net = self.net.with_orientations(options.orientations)
        self._warm_up()
        self.spec = self.net.spec
        self.preview = self._preview()

    def _preview(self) -> PatchRefiner | None:
        return None if self.options.one_pass else self.with_options(ONE_PASS)

    def _warm_up(self) -> None:
        # a stroke usually touches 1 to 4 patches, refined in one batch
        self.net.warm_up(range(1, 5), self.net_size)

    def with_options(self, options: RefinerOptions) -> PatchRefiner:
        """The same refiner, sharing its network, with other options (the app's one-pass
        preview of its full refinement, say)."""
        sibling = copy.copy(self)
        sibling.options = options
        if options.orientations != self.options.orientations:
            sibling.net = self.net.with_orientations(options.orientations)
            sibling._warm_up()
        sibling.preview = sibling._preview()
        return sibling

    def refine(
        self, image_patch: np.ndarray, base_logits: np.ndarray, stroke_channel: np.ndarray
    ) -> np.ndarray:
        """Refined logits of one patch.

        Parameters
        ----------
        image_patch : (C, S, S) float32 ndarray
            Normalised image channels at network size (C = the base model's inputs).
        base_logits : (S, S) float32 ndarray
            Raw base-model logits of the patch.
        stroke_channel : (S, S) float32 ndarray
            All strokes on the patch, in {-1, 0, +1}.

        Returns
        -------
        logits : (S, S) float32 ndarray
            A new array; the inputs are never modified.
        """
        image_patch = np.asarray(image_patch, dtype=np.float32)
        if image_patch.ndim != 3:
            raise ValueError(
                f"image_patch must have shape ({self.spec.image_channels}, S, S), "
                f"got {image_patch.shape}"
            )
        return self.refine_batch(
            image_patch[None], np.asarray(base_logits)[None], np.asarray(stroke_channel)[None]
        )[0]

    def refine_batch(
        self, image_patches: np.ndarray, base_logits: np.ndarray, stroke_channels: np.ndarray
    ) -> np.ndarray:
        """Refined logits of a batch of patches in one forward pass.

        Parameters
        ----------
        image_patches : (B, C, S, S) float32 ndarray
        base_logits, stroke_channels : (B, S, S) float32 ndarrays
            As in :meth:`refine`, per patch.

        Returns
        -------
        logits : (B, S, S) float32 ndarray
        """
        image_patches = np.asarray(image_patches, dtype=np.float32)
        channels = self.spec.image_channels
        if image_patches.ndim != 4 or image_patches.shape[1] != channels:
            raise ValueError(
                f"image_patches must have shape (B, {channels}, S, S), got {image_patches.shape}"
            )
        size = (image_patches.shape[0], *image_patches.shape[2:])
        for name, planes in (("base_logits", base_logits), ("stroke_channels", stroke_channels)):
            if np.shape(planes) != size:
                raise ValueError(f"{name} must have shape {size}, got {np.shape(planes)}")
        return refine_iteratively(
            self.net,
            image_patches,
            base_logits,
            np.asarray(stroke_channels, dtype=np.float32),
            self.options.iterations,
        )

    __call__ = refine
