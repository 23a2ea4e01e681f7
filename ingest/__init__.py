"""Ingest: messages from outside systems (inspectors' app, call centre, IoT gateway, vehicle
trackers, departments' systems) validated against versioned JSON schemas and applied to the
domain exactly once in effect, from Kafka or from an in-process queue.
"""
