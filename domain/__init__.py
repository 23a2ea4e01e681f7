"""The CityOps domain: grid cases, incidents, hazard sources, hotline tickets and resources.

Each stream is an event-sourced aggregate with its own application; this package knows
nothing of HTTP, Kafka or SQL.
"""
