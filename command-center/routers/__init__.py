"""One router per resource of the command centre."""
