"""``etmira`` subcommands of the model package (see ``annotator.cli``).

``etmira`` imports every command module to build its parser: what would make ``etmira --help``
slow (torch, onnx, matplotlib) is imported inside a command's ``func``, the rest at the top.
"""
