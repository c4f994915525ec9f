"""iqlkit: Implicit Q-Learning for a course, from expectiles to GPU AntMaze."""
__version__ = "0.1.0"
