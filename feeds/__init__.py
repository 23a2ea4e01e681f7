"""Feeds for departments: domain events published to Kafka and to webhooks, filtered by
subscriptions and by the sharing class of every field."""
