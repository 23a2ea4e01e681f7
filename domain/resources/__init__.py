"""Emergency resources: vehicles, teams and supplies, their status and position."""
