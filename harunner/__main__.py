"""`python -m harunner` runs the CLI."""

from harunner.cli import main

main()
