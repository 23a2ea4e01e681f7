"""Grid cases: the city-management workflow from report to closing."""
