"""`python -m harunner` runs the CLI."""

from harunner.cli.entry import main

main()
