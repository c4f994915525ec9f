"""The IQL engine: the agents (iql, nets), the fast path (fast), the one training loop with its run folders
(train, runfolder), online fine-tuning (online) and the baselines run through it. Imports theory and envs."""
