"""Training: the recipe (optimizer, schedule, fit) and the callbacks around it."""
