"""Users, departments and API keys."""
