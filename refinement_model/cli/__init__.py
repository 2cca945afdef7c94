"""``etmira`` subcommands of the model package (see ``annotator.cli``).

Each command imports its work inside its ``func``: ``etmira`` imports every command module
to build its parser, and ``etmira --help`` should not wait for torch or the data stack.
"""
