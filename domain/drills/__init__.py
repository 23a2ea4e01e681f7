"""Drills: windows of real history replayed, in isolation, into a drill's own stores, where
invited participants act as in live work (the drill registry's aggregate and commands)."""
