"""The IQL paper's Table 1, the numbers the kit's results are set beside: normalised scores (D4RL locomotion v2 and
AntMaze v0) of the methods the kit trains. Kostrikov, Nair and Levine, *Offline Reinforcement Learning with Implicit
Q-Learning* (ICLR 2022)."""
from __future__ import annotations

PAPER = ("Kostrikov, Nair and Levine, Offline Reinforcement Learning with Implicit Q-Learning (ICLR 2022), Table 1: "
         "normalised scores, D4RL locomotion v2 and AntMaze v0")
# the paper's Table 1, the columns of the methods the kit trains: BC, 10% BC, one-step RL, IQL
TABLE1: dict[str, dict[str, float]] = {
    "halfcheetah-medium": {"bc": 42.6, "top10-bc": 42.5, "one-step": 48.4, "iql": 47.4},
    "hopper-medium": {"bc": 52.9, "top10-bc": 56.9, "one-step": 59.6, "iql": 66.2},
    "walker2d-medium": {"bc": 75.3, "top10-bc": 75.0, "one-step": 81.8, "iql": 78.3},
    "halfcheetah-medium-replay": {"bc": 36.6, "top10-bc": 40.6, "one-step": 38.1, "iql": 44.2},
    "hopper-medium-replay": {"bc": 18.1, "top10-bc": 75.9, "one-step": 97.5, "iql": 94.7},
    "walker2d-medium-replay": {"bc": 26.0, "top10-bc": 62.5, "one-step": 49.5, "iql": 73.8},
    "halfcheetah-medium-expert": {"bc": 55.2, "top10-bc": 92.9, "one-step": 93.4, "iql": 86.7},
    "hopper-medium-expert": {"bc": 52.5, "top10-bc": 110.9, "one-step": 103.3, "iql": 91.5},
    "walker2d-medium-expert": {"bc": 107.5, "top10-bc": 109.0, "one-step": 113.0, "iql": 109.6},
    "antmaze-umaze": {"bc": 54.6, "top10-bc": 62.8, "one-step": 64.3, "iql": 87.5},
    "antmaze-umaze-diverse": {"bc": 45.6, "top10-bc": 50.2, "one-step": 60.7, "iql": 62.2},
    "antmaze-medium-play": {"bc": 0.0, "top10-bc": 5.4, "one-step": 0.3, "iql": 71.2},
    "antmaze-medium-diverse": {"bc": 0.0, "top10-bc": 9.8, "one-step": 0.0, "iql": 70.0},
    "antmaze-large-play": {"bc": 0.0, "top10-bc": 0.0, "one-step": 0.0, "iql": 39.6},
    "antmaze-large-diverse": {"bc": 0.0, "top10-bc": 6.0, "one-step": 0.0, "iql": 47.5},
}
