"""Free-Evolve: coactivation statistics, topology operators, and the evolve loop."""
