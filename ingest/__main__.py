"""`python -m cityops.ingest`: the `cityops ingest` commands without the top-level CLI."""

from cityops.ingest.cli import main

main()
