"""Small environments made for teaching IQL: the two-step MDP and slippery grid mazes (the paper's U-maze)."""
from toy_envs.grid_maze import GridMaze, grid_maze, maze_dataset, u_maze
from toy_envs.tabular_mdp import TabularMDP
from toy_envs.two_step import flip_tau, two_step_behavior, two_step_mdp, v_s1_closed_form

__all__ = ["GridMaze", "TabularMDP", "flip_tau", "grid_maze", "maze_dataset", "two_step_behavior",
           "two_step_mdp", "u_maze", "v_s1_closed_form"]
