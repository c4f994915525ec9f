"""Experiments built on the engine: expectile regression with a network (notebook 01), method comparisons, the paper's
table over several datasets, ablation sweeps, where their stacks run (a local process pool or Ray), the tau study,
policy extraction, the fine-tuning study, and the speed bench."""
