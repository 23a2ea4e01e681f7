"""CityOps: event-sourced city operations and emergency command.

This package holds the typed settings, the composition root and the command-line tool; the
domain, projections, ingest, maps and command centre are its sub-packages.
"""
