"""Online adaptation of the refiner to the mirror being traced, from the user's corrections.

The shipped refiner was trained on other mirrors. While a user corrects one, every corrected
patch says what the refiner should have produced there: :class:`OnlineAdapter` fine-tunes a
part of the network (the decoder's last block and the segmentation head, the head alone, or
the whole decoder) on those patches, in the background, and keeps the result only if it does
better on corrected patches it did not train on.

API::

    adapter = OnlineAdapter(refiner, AdaptationOptions())   # refiner: a PatchRefiner
    result = adapter.update(patches, cancel=None)  # patches: CorrectedPatch, oldest first
    result.accepted, result.loss_before, result.loss_after, result.seconds
    adapted = adapter.refiner()        # PatchRefiner with the accepted weights (same options)
    data = adapter.state.to_bytes()    # only the trained tensors + the base checkpoint SHA-256
    adapter.load_state(AdaptedState.from_bytes(data))   # InputError for a foreign refiner's

How an update trains (all seeded by ``options.seed`` and the update's number, so that the same
patches give the same weights):

* Examples: each of the (at most ``max_examples`` most recent) patches once with the user's own
  strokes as the stroke channel, and ``variants`` more times with 0..``max_strokes - 1``
  strokes simulated against the corrected mask (:func:`~refinement_model.training.refiner.
  simulate_strokes`, as training does), each in one of the 8 flips/rotations. The prediction
  input is the patch's start logits, as in the app; the target is the corrected mask. Pixels
  the user drew weigh 1 in the loss, the others (where the target is the network's own output,
  accepted but not checked by the user) ``network_weight``. The loss is that weighted binary
  cross-entropy, or the Dice loss the refiner was trained with (``loss="dice"``, unweighted).
* A held-out part (``validation_fraction``, at least one patch) validates, with the current
  weights and with the trained ones: the loss on those patches with the user's strokes and with
  none, and the pixels the propagated mask gets wrong there (the start, with the no-stroke
  prediction's decisions where they differ from the base refiner's:
  :func:`~refinement_model.corrections.propagated_change`, what unreviewed patches show). The
  update is accepted only if it lowers the loss and gets no more pixels wrong; otherwise the
  adapter keeps its current weights.
* The frozen part of the network runs once per example (its features are cached); only the
  trained part runs at each step, on ``crop``-sized windows, decoded with ``context`` pixels
  around them that are left out of the loss (a trained decoder's convolutions then see what
  they see on the whole patch rather than zeros at the window's edges).
* Each update continues from the last accepted weights; the shipped refiner is never modified.

The adapted refiner runs on the base refiner's backend (ONNX Runtime on a CPU, exported anew
for each accepted state).
"""

from __future__ import annotations

import copy
import hashlib
import json
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from safetensors.numpy import load, save

from refinement_model.backends import eager_logits
from refinement_model.blocks import NET_MULTIPLE
from refinement_model.corrections import propagated_change
from refinement_model.errors import Cancelled, InputError
from refinement_model.fast_net import FastNet
from refinement_model.imageio import file_sha256
from refinement_model.nets import LOGIT_SCALE, refiner_input, scale_base_logits
from refinement_model.onnx_backend import NotEqualError, OnnxBackend, checked, probe_batch
from refinement_model.onnx_export import INPUT_NAME, export_onnx, with_weights
from refinement_model.patch_refiner import PatchRefiner
from refinement_model.strokes import stroke_channel
from refinement_model.training.data import dihedral
from refinement_model.training.losses import SegmentationLoss
from refinement_model.training.refiner import simulate_strokes, stroke_count

__all__ = [
    "LOSSES",
    "TRAINABLE",
    "AdaptationOptions",
    "AdaptationResult",
    "AdaptedState",
    "CorrectedPatch",
    "OnlineAdapter",
]

# Which part of a U-Net refiner trains: the decoder's last block and the segmentation head
# (1.8k parameters in the shipped refiner), the head alone (73), or the decoder and the head
# (0.72M: with true labels, ten times the last block's gain; docs/evaluation/adaptive).
TRAINABLE = ("last_block", "head", "decoder")
LOSSES = ("cross_entropy", "dice")
_METADATA_KEY = "etmira_adaptation"
_FORMAT_VERSION = 1


def _positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class AdaptationOptions:
    """How :class:`OnlineAdapter` trains (see the module docstring).

    Attributes
    ----------
    trainable : {"last_block", "head", "decoder"}
    loss : {"cross_entropy", "dice"}
        The training and validation loss: pixel-weighted binary cross-entropy, or the Dice
        loss of the refiner's training (which counts the thin lines as much as the
        background; needs ``network_weight`` 1).
    steps : int
        Optimiser steps per update.
    learning_rate : float
        Adam's (1e-3: the trained layers move little per update, and updates accumulate).
    batch_size : int
        Examples per step.
    crop : int
        Side of the training windows in network pixels (a multiple of 32, the networks' side
        multiple; at most the patch).
    context : int
        Network pixels decoded around a training window, where the patch has them, and left
        out of its loss (a multiple of 32; 0: the window alone).
    max_examples : int
        The most recent corrected patches an update uses.
    variants : int
        Simulated-stroke versions of each patch besides the one with the user's strokes.
    max_strokes : int
        A simulated version has 0..max_strokes - 1 strokes (log-uniform).
    network_weight : float
        Loss weight, in [0, 1], of the pixels the user did not draw. 1 (the default) weighs
        every pixel alike: a smaller weight lets the strokes' pixels (mostly added lines)
        outweigh the background, and the propagated refiner draws lines everywhere (tuning
        on the validation view: docs/evaluation/adaptive).
    validation_fraction : float
        Share of the patches held out to validate, in (0, 1); at least one patch.
    stroke_scale : float
        Network pixels per view pixel (simulated stroke widths are drawn at view resolution).
    seed : int
    """

    trainable: str = "last_block"
    loss: str = "cross_entropy"
    steps: int = 20
    learning_rate: float = 1e-3
    batch_size: int = 8
    crop: int = 64
    context: int = 0
    max_examples: int = 24
    variants: int = 1
    max_strokes: int = 3
    network_weight: float = 1.0
    validation_fraction: float = 0.25
    stroke_scale: float = 0.5
    seed: int = 0

    def __post_init__(self):
        if self.trainable not in TRAINABLE:
            raise ValueError(f"trainable must be one of {TRAINABLE}, got {self.trainable!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        for name in ("steps", "batch_size", "max_examples", "max_strokes", "crop"):
            _positive_int(getattr(self, name), name)
        _positive_int(self.variants, "variants", 0)
        _positive_int(self.seed, "seed", 0)
        _positive_int(self.context, "context", 0)
        for name in ("crop", "context"):
            if getattr(self, name) % NET_MULTIPLE:
                raise ValueError(
                    f"{name} must be a multiple of {NET_MULTIPLE}, got {getattr(self, name)}"
                )
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not 0 <= self.network_weight <= 1:
            raise ValueError(f"network_weight must be in [0, 1], got {self.network_weight!r}")
        if self.loss == "dice" and self.network_weight != 1:
            raise ValueError(f"the Dice loss weighs every pixel alike, got {self.network_weight=}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}"
            )
        if not self.stroke_scale > 0:
            raise ValueError(f"stroke_scale must be > 0, got {self.stroke_scale!r}")


@dataclass(frozen=True)
class CorrectedPatch:
    """One patch as the user left it, at network size n.

    Attributes
    ----------
    image : (C, n, n) float32 ndarray
        The refiner's normalised image channels.
    start : (n, n) float32 ndarray
        The logits the refiner takes as its prediction input (the app's start).
    target : (n, n) bool ndarray
        The corrected mask: the refined prediction with the user's strokes burned in.
    user : (n, n) int8 ndarray
        +1 where the user added, -1 where erased, 0 elsewhere; must agree with ``target``.
    """

    image: np.ndarray
    start: np.ndarray
    target: np.ndarray
    user: np.ndarray

    def __post_init__(self):
        image = np.asarray(self.image)
        if image.ndim != 3 or image.dtype != np.float32 or image.shape[1] != image.shape[2]:
            raise ValueError(
                f"image must be a (C, n, n) float32 array, got {image.dtype} {image.shape}"
            )
        size = image.shape[1:]
        for name, dtype in (("start", np.float32), ("target", np.bool_), ("user", np.int8)):
            value = np.asarray(getattr(self, name))
            if value.shape != size or value.dtype != dtype:
                raise ValueError(
                    f"{name} must be a {size} {np.dtype(dtype).name} array, "
                    f"got {value.dtype} {value.shape}"
                )
        user = np.asarray(self.user)
        if not np.isin(user, (-1, 0, 1)).all():
            raise ValueError("user must hold only -1, 0 and +1")
        if (np.asarray(self.target)[user != 0] != (user[user != 0] > 0)).any():
            raise ValueError("target must agree with user where the user drew")


@dataclass(frozen=True)
class AdaptedState:
    """The adapted tensors and what they belong to.

    Attributes
    ----------
    tensors : dict of str to float32 ndarray
        The trained parameters, named as in the refiner's state dict.
    base_sha256 : str
        SHA-256 of the base refiner's checkpoint file (of its weights for a network in memory).
    options : dict
        The :class:`AdaptationOptions` that made it (``asdict``).
    updates : int
        Accepted updates that led to it.
    """

    tensors: dict
    base_sha256: str
    options: dict
    updates: int

    def to_bytes(self) -> bytes:
        """safetensors bytes; the rest of the state is JSON in the header metadata."""

        meta = {
            "format": _FORMAT_VERSION,
            "base_sha256": self.base_sha256,
            "options": self.options,
            "updates": self.updates,
        }
        return save(
            {k: np.ascontiguousarray(v) for k, v in self.tensors.items()},
            metadata={_METADATA_KEY: json.dumps(meta, sort_keys=True)},
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, source=None) -> AdaptedState:
        """Inverse of :meth:`to_bytes`; InputError naming ``source`` (a file, say) if bad."""

        try:
            (length,) = struct.unpack("<Q", data[:8])
            header = json.loads(data[8 : 8 + length])
            meta = json.loads(header["__metadata__"][_METADATA_KEY])
            tensors = load(bytes(data))
        except Exception as error:  # noqa: BLE001 (struct, json and safetensors raise many types)
            raise InputError(source, f"not an adapted refiner state ({error})") from None
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT_VERSION:
            found = meta.get("format") if isinstance(meta, dict) else None
            raise InputError(
                source, f"adapted state format {found!r}, this version reads {_FORMAT_VERSION}"
            )
        try:
            base_sha256, options = str(meta["base_sha256"]), dict(meta["options"])
            updates = int(meta["updates"])
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(source, f"damaged adapted state metadata ({error!r})") from None
        return cls(tensors=tensors, base_sha256=base_sha256, options=options, updates=updates)


@dataclass(frozen=True)
class AdaptationResult:
    """What one :meth:`OnlineAdapter.update` did.

    Attributes
    ----------
    state : AdaptedState
        The trained state (kept by the adapter only if ``accepted``).
    accepted : bool
        Whether it lowered the validation loss and got no more validation pixels wrong.
    loss_before, loss_after : float
        Validation loss of the adapter's weights before the update and of the trained ones.
    errors_before, errors_after : float
        Pixels (loss-weighted) the propagated mask gets wrong on the held-out patches, with
        the adapter's weights before the update and with the trained ones.
    seconds : float
        Wall time of the update.
    """

    state: AdaptedState
    accepted: bool
    loss_before: float
    loss_after: float
    errors_before: float
    errors_after: float
    seconds: float


def _decode(decoder: torch.nn.Module, features, size: tuple, blocks: int | None = None):
    """segmentation-models-pytorch's Unet decoder on encoder ``features`` (the encoder's
    outputs but its first, the input itself; shallowest first) for an input of ``size``
    (height, width), up to the input of block ``blocks`` (default: through the last block)."""
    deepest, *skips = features[::-1]
    shapes = [feature.shape[2:] for feature in skips] + [size]
    x = decoder.center(deepest)
    for i, block in enumerate(decoder.blocks[:blocks]):
        x = block(x, *shapes[i], skip_connection=skips[i] if i < len(skips) else None)
    return x


class _FrozenPart(torch.nn.Module):
    """A U-Net refiner up to the input of its first trained module: (B, C + 2, n, n) inputs
    to the features that module takes (the last decoder block's, before its upsampling, or
    the segmentation head's; for a trained decoder the encoder's), as a tuple."""

    def __init__(self, model: torch.nn.Module, trainable: str):
        super().__init__()
        self.unet = model.net
        self.encoder_only = trainable == "decoder"
        blocks = len(self.unet.decoder.blocks)
        self.blocks = blocks - 1 if trainable == "last_block" else blocks
        self.spec = model.spec

    def forward(self, x: torch.Tensor):
        features = self.unet.encoder(x)[1:]
        if self.encoder_only:
            return tuple(features)
        return (_decode(self.unet.decoder, features, x.shape[2:], self.blocks),)


def _frozen_runner(part: _FrozenPart, size: int) -> Callable[[np.ndarray], tuple]:
    """``part`` as a NumPy callable returning a tuple of arrays, on ONNX Runtime (the eager
    network is several times slower on a CPU), or eager PyTorch where the export fails or
    differs from it. The encoder alone (a trained decoder's frozen part) runs eager: its
    output is several tensors."""

    def eager(batch):
        with torch.no_grad():
            output = part(torch.from_numpy(batch))
        return tuple(t.numpy() for t in output)

    if part.encoder_only:
        return eager
    try:
        # optional at run time, as for the networks' backends: eager where it is missing
        import onnxruntime

        session = onnxruntime.InferenceSession(
            export_onnx(part, size=size), providers=["CPUExecutionProvider"]
        )

        def run(batch):
            return session.run(None, {INPUT_NAME: np.ascontiguousarray(batch)})[0]

        probe = probe_batch(part.spec.in_channels, size)
        single = checked(run, probe, eager(probe)[0])
        return lambda batch: (single(batch),)
    # any failure falls back to eager: the exporter and onnxruntime raise many types, and
    # checked raises NotEqualError
    except Exception:  # noqa: BLE001
        return eager


def _trained_modules(model: torch.nn.Module, trainable: str) -> dict[str, torch.nn.Module]:
    """The modules of a U-Net refiner that ``trainable`` names, by role."""
    net = model.net
    if trainable == "head":
        return {"head": net.segmentation_head}
    if trainable == "decoder":
        return {"decoder": net.decoder, "head": net.segmentation_head}
    return {"block": net.decoder.blocks[-1], "head": net.segmentation_head}


class OnlineAdapter:
    """Fine-tunes a copy of a refiner's last layers on corrected patches.

    Parameters
    ----------
    refiner : PatchRefiner
        A U-Net refiner (never modified); its options (orientations, iterations, backend) are
        those of the adapted refiners.
    options : AdaptationOptions, optional

    Attributes
    ----------
    base : PatchRefiner
    options : AdaptationOptions
    base_sha256 : str
    state : AdaptedState or None
        The accepted state; None until an update is accepted (the base refiner's weights).
    """

    def __init__(self, refiner: PatchRefiner, options: AdaptationOptions = AdaptationOptions()):
        model = refiner.net.model
        if not hasattr(model, "net") or not hasattr(getattr(model.net, "decoder", None), "blocks"):
            raise ValueError(
                f"online adaptation needs a U-Net refiner (arch 'unet'), got {refiner.spec.arch!r}"
            )
        self.base, self.options = refiner, options
        self.base_sha256 = (
            file_sha256(refiner.path) if refiner.path is not None else _weights_sha256(model)
        )
        self._model = copy.deepcopy(model).eval()
        for parameter in self._model.parameters():
            parameter.requires_grad_(False)
        self._untrained = copy.deepcopy(self._model)
        self._trained = _trained_modules(self._model, options.trainable)
        self._names = [
            name
            for name, p in self._model.named_parameters()
            if any(p is q for m in self._trained.values() for q in m.parameters())
        ]
        self._initial = self._current_tensors()
        self._part = _FrozenPart(self._model, options.trainable)
        self._dice = SegmentationLoss() if options.loss == "dice" else None
        self._frozen = None  # built at the first update, for the patches' size
        self._export = None  # the network's ONNX export, once, for the adapted refiners
        self._cache: dict[tuple[str, bool], dict] = {}
        self.state: AdaptedState | None = None
        self._updates = 0  # accepted ones
        self._calls = 0
        self._latest: tuple[AdaptedState, PatchRefiner] | None = None
        self._building = threading.Lock()

    # -- weights ---------------------------------------------------------------------------

    def _current_tensors(self) -> dict:
        parameters = dict(self._model.named_parameters())
        return {name: parameters[name].detach().numpy().copy() for name in self._names}

    def _load(self, tensors: dict) -> None:
        parameters = dict(self._model.named_parameters())
        with torch.no_grad():
            for name in self._names:
                parameters[name].copy_(torch.from_numpy(np.asarray(tensors[name])))

    def check_state(self, state: AdaptedState, *, source=None) -> None:
        """Raise InputError (naming ``source``, the file ``state`` came from, if given) if
        ``state`` was made for another refiner checkpoint or for other trained layers."""
        if state.base_sha256 != self.base_sha256:
            raise InputError(
                source,
                f"the adapted state was made for the refiner "
                f"{state.base_sha256[:12]}, this refiner is "
                f"{self.base_sha256[:12]}",
            )
        shapes = {name: tensor.shape for name, tensor in self._initial.items()}
        got = {name: np.shape(tensor) for name, tensor in state.tensors.items()}
        if got != shapes:
            raise InputError(
                source,
                f"the adapted state holds {sorted(got)}, this adapter trains {sorted(shapes)}",
            )

    def load_state(self, state: AdaptedState | None, *, source=None) -> None:
        """Make ``state`` the accepted one (None: back to the base refiner's weights).

        Raises
        ------
        InputError
            The state was made for another refiner checkpoint, or for other trained layers
            (naming ``source``, the file it came from, if given).
        """
        if state is not None:
            self.check_state(state, source=source)
        self.state = state
        self._updates = 0 if state is None else state.updates

    def refiner(self, state: AdaptedState | None = None) -> PatchRefiner:
        """A PatchRefiner with the adapted weights of ``state`` (default: the accepted one),
        the base refiner's options and backend; the base refiner itself while there is none.

        Raises
        ------
        InputError
            A state made for another refiner (see :meth:`load_state`).
        """
        state = state or self.state
        if state is None:
            return self.base
        self.check_state(state)
        # an app builds one on its GUI thread while an update trains on another: from a copy
        # that training never touches, one build at a time
        with self._building:
            latest = self._latest
            # keep only the latest: an app keeps one adapted refiner, not the history; the
            # state itself is kept with it, as a freed state's id may name the next one
            if latest is None or latest[0] is not state:
                model = copy.deepcopy(self._untrained)
                parameters = dict(model.named_parameters())
                with torch.no_grad():
                    for name in self._names:
                        parameters[name].copy_(torch.from_numpy(np.asarray(state.tensors[name])))
                model.spec = self._untrained.spec
                latest = self._latest = state, self._adapted_refiner(model, state.tensors)
        return latest[1]

    def _adapted_refiner(self, model: torch.nn.Module, tensors: dict) -> PatchRefiner:
        """The refiner of ``model``: the base's weights but the trained layers', ``tensors``
        (by parameter name). On ONNX
        Runtime it is the adapter's one export with the trained layers' weights put in (a
        tenth of a second, where exporting anew takes about a second), checked equal to the
        eager network."""
        net = self.base.net
        if net.backend == "onnx":
            if self._export is None:
                self._export = export_onnx(model, size=self.base.net_size, named_weights=True)
            probe = probe_batch(model.spec.in_channels, self.base.net_size)
            try:
                session = OnnxBackend(
                    with_weights(self._export, tensors), threads=torch.get_num_threads()
                )
                engine = checked(session, probe, eager_logits(model, probe))
            except NotEqualError:
                pass  # exported whole below, as the base was
            else:
                fast = FastNet.from_engine(engine, model.spec, model=model)
                return PatchRefiner.from_net(fast, options=self.base.options)
        return PatchRefiner(
            model, options=self.base.options, optimise=net.optimised, backend=net.backend
        )

    # -- training --------------------------------------------------------------------------

    def update(
        self, patches: Sequence[CorrectedPatch], *, cancel: Callable[[], bool] | None = None
    ) -> AdaptationResult:
        """Train on corrected patches; keep the result if it validates better.

        Parameters
        ----------
        patches : sequence of CorrectedPatch
            Oldest first, all of the network size; at least two.
        cancel : callable() -> bool, optional
            Checked between steps; raises :class:`~refinement_model.errors.Cancelled` and
            leaves the adapter as it was.

        Returns
        -------
        AdaptationResult
        """
        started = time.perf_counter()
        patches = list(patches)[-self.options.max_examples :]
        if len(patches) < 2 or not all(isinstance(p, CorrectedPatch) for p in patches):
            raise ValueError("update needs at least two CorrectedPatch (one validates)")
        size = patches[0].image.shape
        if any(p.image.shape != size for p in patches) or size[0] != self.base.spec.image_channels:
            raise ValueError(
                f"every patch must have the refiner's {self.base.spec.image_channels}"
                f" image channels and one size, got {[p.image.shape for p in patches]}"
            )
        options = self.options
        rng = np.random.default_rng([options.seed, self._calls])
        self._calls += 1
        held = max(1, round(options.validation_fraction * len(patches)))
        order = rng.permutation(len(patches))
        validation = [patches[i] for i in sorted(order[:held])]
        training = [patches[i] for i in sorted(order[held:])]
        try:
            self._load(self._initial)
            train_set = self._examples(training, training=True, cancel=cancel)
            val_set = self._examples(validation, training=False, cancel=cancel)
            frozen = val_set["frozen"]
            if self.state is None:  # the current weights are the base refiner's
                loss_before, errors_before = self._scores(val_set, frozen, frozen)
            else:
                self._load(self.state.tensors)
                loss_before, errors_before = self._scores(val_set, frozen, self._logits(val_set))
            self._train(train_set, rng, cancel)
            loss_after, errors_after = self._scores(val_set, frozen, self._logits(val_set))
            tensors = self._current_tensors()
        finally:
            self._load(self._initial)
        # patches that changed or left the window are not needed again
        keep = {_patch_digest(p) for p in patches}
        self._cache = {key: value for key, value in self._cache.items() if key[0] in keep}
        accepted = bool(loss_after < loss_before and errors_after <= errors_before)
        self._updates += accepted
        state = AdaptedState(
            tensors=tensors,
            base_sha256=self.base_sha256,
            options=asdict(options),
            updates=self._updates,
        )
        if accepted:
            self.state = state
        return AdaptationResult(
            state=state,
            accepted=accepted,
            loss_before=loss_before,
            loss_after=loss_after,
            errors_before=errors_before,
            errors_after=errors_after,
            seconds=time.perf_counter() - started,
        )

    def _examples(self, patches, *, training: bool, cancel) -> dict:
        """Frozen-part features, residual logits, targets and loss weights of the examples of
        ``patches`` (training or validation ones), stacked; cached per patch content."""
        rows = []
        for patch in patches:
            key = (_patch_digest(patch), training)
            if key not in self._cache:
                if cancel is not None and cancel():
                    raise Cancelled("adaptation cancelled")
                self._cache[key] = self._patch_examples(patch, key[0], training)
            rows.append(self._cache[key])
        stacked = {
            name: torch.cat([row[name] for row in rows]) for name in rows[0] if name != "features"
        }
        stacked["features"] = tuple(
            torch.cat(scale) for scale in zip(*(row["features"] for row in rows), strict=True)
        )
        return stacked

    def _patch_examples(self, patch: CorrectedPatch, digest: str, training: bool) -> dict:
        """A patch's examples: with the user's strokes, then (training) ``variants`` with
        simulated ones, each in a random orientation, or (validation) with no strokes."""
        n = patch.image.shape[-1]
        user = patch.user.astype(np.float32)
        arrays = [patch.image, patch.start, user, patch.target]
        if not training:
            rows = [
                (*arrays, user),
                (patch.image, patch.start, np.zeros_like(user), patch.target, user),
            ]
        else:
            # seeded by the patch's content: its examples do not depend on the other patches
            rng = np.random.default_rng([self.options.seed, int(digest[:15], 16)])
            image, start, user, target = dihedral(arrays, int(rng.integers(8)))
            rows = [(image, start, user, target, user)]
            for _ in range(self.options.variants):
                image, start, user, target = dihedral(arrays, int(rng.integers(8)))
                count = stroke_count(rng, self.options.max_strokes) - 1
                strokes = simulate_strokes(
                    target, start > 0, count=count, rng=rng, scale=self.options.stroke_scale
                )
                # the pixels the user drew stay the protected part of the target
                rows.append((image, start, stroke_channel(strokes, (n, n)), target, user))
        images, starts, channels, targets, users = (
            torch.from_numpy(np.stack([np.asarray(row[i], np.float32) for row in rows]))
            for i in range(5)
        )
        if self._frozen is None:
            self._frozen = _frozen_runner(self._part, n)
        features = self._frozen(refiner_input(images, starts, channels).numpy())
        examples = {
            "features": tuple(torch.from_numpy(np.ascontiguousarray(f)) for f in features),
            "residual": LOGIT_SCALE * scale_base_logits(starts),
            "targets": targets,
            "weights": torch.where(users != 0, 1.0, self.options.network_weight),
            "no_strokes": ~channels.flatten(1).any(1),
        }
        if not training:
            # the base refiner's logits, which every validation compares with (update loads
            # its weights before it makes examples)
            examples["frozen"] = self._logits(examples)
        return examples

    def _trained_logits(self, features: tuple, size: tuple) -> torch.Tensor:
        """(B, height, width) logits before the residual, from frozen-part features of an
        input of ``size`` (height, width)."""
        if "decoder" in self._trained:
            x = _decode(self._trained["decoder"], features, size)
        else:
            (x,) = features
        if "block" in self._trained:
            x = self._trained["block"](x, *size, skip_connection=None)
        return self._trained["head"](x)[:, 0]

    def _logits(self, examples: dict) -> torch.Tensor:
        """(B, n, n) logits of every example with the current weights."""
        with torch.no_grad():
            return (
                self._trained_logits(examples["features"], examples["targets"].shape[1:])
                + examples["residual"]
            )

    def _scores(self, examples: dict, frozen: torch.Tensor, logits: torch.Tensor):
        """Loss and propagated-mask errors (:func:`_propagated_errors`) of ``logits`` on
        validation ``examples``."""
        loss = self._loss(logits, examples["targets"], examples["weights"])
        return float(loss), _propagated_errors(examples, frozen, logits)

    def _loss(self, logits, targets, weights) -> torch.Tensor:
        if self._dice is not None:
            return self._dice(logits, targets)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, weight=weights)

    def _window_logits(self, examples: dict, rows, window) -> torch.Tensor:
        """Logits of examples ``rows`` on a crop ``window`` (y, x, side) in network pixels,
        decoded with ``options.context`` pixels around it where the patch has them."""
        n = examples["targets"].shape[-1]
        y, x, side = window
        context = self.options.context
        top, left = max(0, y - context), max(0, x - context)
        bottom, right = min(n, y + side + context), min(n, x + side + context)
        features = []
        for scale in examples["features"]:
            factor = n // scale.shape[-1]
            features.append(
                scale[rows, :, top // factor : bottom // factor, left // factor : right // factor]
            )
        logits = self._trained_logits(tuple(features), (bottom - top, right - left))
        inside = logits[:, y - top : y - top + side, x - left : x - left + side]
        return inside + examples["residual"][rows, y : y + side, x : x + side]

    def _window_loss(self, examples: dict, rows, window) -> torch.Tensor:
        """The loss of examples ``rows`` on a crop ``window`` (y, x, side) in network
        pixels (:meth:`_window_logits`)."""
        y, x, side = window
        crop = np.s_[rows, y : y + side, x : x + side]
        logits = self._window_logits(examples, rows, window)
        return self._loss(logits, examples["targets"][crop], examples["weights"][crop])

    def _train(self, examples: dict, rng, cancel) -> None:
        parameters = [p for m in self._trained.values() for p in m.parameters()]
        for parameter in parameters:
            parameter.requires_grad_(True)
        optimiser = torch.optim.Adam(parameters, lr=self.options.learning_rate)
        n = examples["targets"].shape[-1]
        side = min(self.options.crop, n)
        try:
            for _ in range(self.options.steps):
                if cancel is not None and cancel():
                    raise Cancelled("adaptation cancelled")
                rows = rng.integers(0, len(examples["targets"]), self.options.batch_size)
                starts = rng.integers(0, (n - side) // NET_MULTIPLE + 1, 2)
                y, x = (int(v) * NET_MULTIPLE for v in starts)
                optimiser.zero_grad()
                loss = self._window_loss(examples, torch.from_numpy(rows), (y, x, side))
                loss.backward()
                optimiser.step()
        finally:
            for parameter in parameters:
                parameter.requires_grad_(False)


def _weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of a network's weights (names and bytes), for a refiner without a file."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _propagated_errors(examples: dict, frozen: torch.Tensor, logits: torch.Tensor) -> float:
    """Loss-weighted pixels of the no-stroke examples that the propagated mask of ``logits``
    (over the base refiner's ``frozen`` logits; the start is the residual's sign) gets wrong."""
    rows = examples["no_strokes"]
    start = examples["residual"][rows]
    shown = start + torch.from_numpy(propagated_change(start, frozen[rows], logits[rows])) > 0
    wrong = shown != examples["targets"][rows].bool()
    return float((examples["weights"][rows] * wrong).sum())


def _patch_digest(patch: CorrectedPatch) -> str:
    """SHA-256 of a patch's arrays: the key of its cached examples."""
    digest = hashlib.sha256()
    for array in (patch.image, patch.start, patch.target, patch.user):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()
