"""Emergency incidents and the contingency plans that organise the response to them."""
