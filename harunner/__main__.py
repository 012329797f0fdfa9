"""`python -m harunner` runs the CLI."""

from harunner.cli.app import main

main()
