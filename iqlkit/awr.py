"""Policy extraction by AWR (paper Eq. 7) as weighted behaviour cloning: the advantages, the weights and their
statistics, and the policy's std (iqlkit.extraction runs the extraction itself)."""
from __future__ import annotations

import numpy as np
import torch

from iqlkit.data import Batch
from iqlkit.iql import IQL


@torch.no_grad()
def advantages(agent: IQL, batch: Batch) -> torch.Tensor:
    """A(s, a) = Q_target(s, a) - V(s) on the batch's real (s, a) pairs, as the actor loss sees them: [B] for one
    agent and a batch [B, ...], else [S, B]."""
    single = batch.observations.dim() == 2
    batch = agent.agent_batch(batch)
    adv = agent.target_q(batch.observations, batch.actions) - agent.value_net(batch.observations)
    return adv[0] if single else adv


def clipped_weights(adv: torch.Tensor | np.ndarray, beta: float, clip: float = 100.0) -> torch.Tensor:
    """w = min(exp(beta A), clip) (Eq. 7 with the authors' clip); beta = 0 gives w = 1 (behaviour cloning)."""
    return torch.exp(beta * torch.as_tensor(adv, dtype=torch.float32)).clamp(max=clip)


def awr_weights(agent: IQL, batch: Batch, beta: float, clip: float = 100.0) -> torch.Tensor:
    """w = min(exp(beta (Q_target(s, a) - V(s))), clip) on the batch: the per-sample weights of the AWR loss."""
    return clipped_weights(advantages(agent, batch), beta, clip)


def clip_fraction(weights: torch.Tensor, clip: float = 100.0) -> float:
    """Fraction of samples whose weight sits at the clip: mean(w >= clip)."""
    return float((weights >= clip).float().mean())


def effective_sample_size(weights: torch.Tensor) -> float:
    """Normalised effective sample size (sum w)^2 / (N sum w^2): 1 for equal weights, 1/N when one dominates."""
    w = weights.double()
    return float(w.sum() ** 2 / (len(w) * w.square().sum()))


@torch.no_grad()
def policy_std(agent: IQL, obs: np.ndarray | torch.Tensor) -> np.ndarray:
    """sigma(s) = exp(log_std(s)) of the Gaussian policy: [n, act_dim] for one agent, else [S, n, act_dim]."""
    (x,), squeeze = agent.as_inputs(obs)
    _, log_std = agent.actor(x)
    return (log_std[0] if squeeze else log_std).exp().cpu().numpy()
