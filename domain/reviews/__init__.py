"""After-action reviews: what a response came to, measured from the events, and the findings
and improvement plan the planners keep about it (docs/after-action-review.md)."""
