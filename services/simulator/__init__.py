"""A realistic event generator: reps in teams and regions, calls, deals, orders."""
