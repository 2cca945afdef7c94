"""``etmira`` subcommands of the simulation package (see ``annotator.cli``)."""
