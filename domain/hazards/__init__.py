"""Hazard sources, their sensors, thresholds and alarms."""
