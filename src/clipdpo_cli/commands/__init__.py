"""One module per subcommand: a thin typer layer that parses options and calls a stage function."""
