"""Exercises: a scenario file (the master scenario events list) of injects and objectives,
played on top of a drill, its objectives measured from the drill's own events and rated by
evaluators (docs/scenarios.md)."""
