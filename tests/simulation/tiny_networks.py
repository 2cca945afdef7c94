"""Small base and refiner checkpoints with the test grid, for simulation runs that take seconds."""

import torch

from refinement_model.checkpoints import save_checkpoint
from refinement_model.nets import create_model

GRID = {"patch_size": 128, "stride": 64, "net_size": 64}


def save_tiny_networks(folder, *, refiner_head_std: float | None = None) -> dict:
    """Write ``base.safetensors`` and ``refiner.safetensors`` into ``folder``; returns their paths.

    ``refiner_head_std`` re-draws the refiner's head so that it is far from the identity it
    starts as, which a test needs when the refiner's output must differ from its input.
    """
    torch.manual_seed(0)
    paths = {}
    for kind in ("base", "refiner"):
        model = create_model(kind, decoder_channels=(8, 8, 8, 8, 8))
        if kind == "refiner" and refiner_head_std is not None:
            for parameter in model.net.segmentation_head.parameters():
                torch.nn.init.normal_(parameter, std=refiner_head_std)
        paths[kind] = folder / f"{kind}.safetensors"
        save_checkpoint(paths[kind], model, metadata=GRID)
    return paths
