"""Hotline tickets: citizens' calls from intake to the reply."""
