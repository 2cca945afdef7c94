"""``etmira`` subcommands of the model package (see ``annotator.cli``)."""
