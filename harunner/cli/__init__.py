"""The command line (Typer): each command parses, loads the config, calls one function."""
