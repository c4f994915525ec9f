"""Experiments built on the engine: expectile regression with a network (notebook 01), method comparisons, ablation
sweeps, the tau study, policy extraction, the fine-tuning study, and the speed bench."""
