"""Data and environments: Minari datasets as tensors, the kit's own PointMaze and AntMaze data (and the ant that
walks it), maze geometry, and rollouts that score a policy. Imports the theory layer at most."""
