"""Return scaling on the locomotion rows (notebook 09): the clipped share of AWR weights in closed form, the factor
and its return range of exactly 1000, the two critics on hopper-like data, scores between two reference scales, and
the figures of iqlkit.plots.locomotion."""
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from iqlkit.engine.iql import IQLConfig
from iqlkit.envs.data import Transitions, preprocess_rewards
from iqlkit.envs.evaluate import normalized_score
from iqlkit.experiments.compare import Run, success_table
from iqlkit.experiments.scaling import (
    Critic,
    clipped_share,
    clipped_shares,
    rescale_score,
    return_range,
    reward_factor,
    scaling_study,
)
from iqlkit.plots import locomotion as plots

LOG_CLIP = math.log(100.0)  # exp(beta A) reaches the clip of 100 at A = ln(100) / beta


def hopper_like(seed: int = 0, n_episodes: int = 24, obs_dim: int = 4) -> Transitions:
    """Episodes of 20 to 1,000 steps with hopper-sized rewards (3 per step on average, between -1 and 7 with the first
    action component), so episode returns span about 60 to 3,000: the scaling factor is about 1 / 3."""
    rng = np.random.default_rng(seed)
    parts = {k: [] for k in ("obs", "act", "rew", "next", "term", "end")}
    for length in np.linspace(20, 1000, n_episodes).astype(int):
        obs = rng.normal(size=(length + 1, obs_dim))
        act = rng.uniform(-1, 1, size=(length, 2))
        parts["obs"].append(obs[:-1])
        parts["next"].append(obs[1:])
        parts["act"].append(act)
        parts["rew"].append(3.0 + 4.0 * act[:, 0] + 0.1 * obs[:-1, 0])
        end = np.zeros(length)
        end[-1] = 1.0
        parts["end"].append(end)
        parts["term"].append(end if length < 1000 else np.zeros(length))  # a fall ends the short ones
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    return Transitions.from_arrays(arrays["obs"], arrays["act"], arrays["rew"], arrays["next"], arrays["term"],
                                   arrays["end"])


def test_clipped_share_is_the_share_of_advantages_at_or_above_ln_clip_over_beta():
    beta = 3.0
    edge = LOG_CLIP / beta  # 1.535...
    advantages = np.array([-5.0, 0.0, 0.5 * edge, 0.99 * edge, 1.01 * edge, 2 * edge, 10.0, 1e6])
    assert clipped_share(advantages, beta) == pytest.approx(4 / 8)
    assert clipped_share(advantages, 0.0) == 0.0  # beta 0: every weight is 1 (behaviour cloning)
    assert clipped_share(torch.as_tensor(advantages), beta, clip=math.exp(3 * 10.0) / 2) == pytest.approx(2 / 8)
    # a factor c on the advantages is a factor c on beta: the share at beta c, i.e. mean(A >= ln(100) / (beta c))
    factors = [0.1, 0.5, 1.0, 2.0, 100.0]
    expected = [np.mean(advantages >= LOG_CLIP / (beta * c)) for c in factors]
    np.testing.assert_allclose(clipped_shares(advantages, factors, beta), expected)
    assert np.all(np.diff(clipped_shares(np.random.default_rng(0).normal(size=500), np.geomspace(0.01, 100, 30),
                                         beta)) >= 0)  # never falls as the rewards grow


def test_scaling_by_the_return_range_gives_a_range_of_exactly_1000():
    data = hopper_like()
    raw_range = return_range(data)
    scaled = preprocess_rewards(data, "return_range")
    assert return_range(scaled) == pytest.approx(1000.0, rel=1e-5)
    assert reward_factor(data, "return_range") == pytest.approx(1000.0 / raw_range, rel=1e-5)
    assert reward_factor(data, "none") == 1.0
    torch.testing.assert_close(scaled.rewards, data.rewards * reward_factor(data, "return_range"))
    with pytest.raises(ValueError, match="none"):
        reward_factor(data, "minus_one")


def test_raw_hopper_like_rewards_put_more_weights_at_the_clip_than_scaled_ones():
    data = hopper_like()
    lr = 3e-3  # 10x the preset's: Adam moves a network's output by about lr per update whatever the target's scale,
    # so a few hundred updates at 3e-4 leave both critics far below their targets, at the same small scale
    config = IQLConfig.preset("locomotion", hidden=(32, 32), batch_size=64, actor_lr=lr, critic_lr=lr, value_lr=lr)
    critics = scaling_study(data, steps=300, seed=0, config=config)
    raw, scaled = critics["none"], critics["return_range"]
    assert (raw.reward, scaled.reward) == ("none", "return_range") and raw.factor == 1.0
    assert scaled.factor == pytest.approx(1000.0 / return_range(data), rel=1e-5) and 0.25 < scaled.factor < 0.5
    for critic in (raw, scaled):
        assert critic.values.shape == critic.advantages.shape == (len(data),)
        assert np.isfinite(critic.advantages).all() and critic.v_mean.shape[1] == 2 and critic.seconds > 0
    assert clipped_share(raw.advantages, config.beta) > clipped_share(scaled.advantages, config.beta)
    assert raw.advantages.std() > scaled.advantages.std()


def test_a_score_keeps_its_return_from_one_reference_scale_to_another():
    kit, d4rl = (10.0, 1010.0), (-20.0, 3230.0)
    np.testing.assert_allclose(rescale_score([0.0, 100.0], kit, d4rl), normalized_score(np.array([10.0, 1010.0]), *d4rl))
    np.testing.assert_allclose(rescale_score(rescale_score([12.5, 80.0], kit, d4rl), d4rl, kit), [12.5, 80.0])
    np.testing.assert_allclose(rescale_score(55.0, kit, kit), 55.0)


def fake_critic(reward: str, factor: float, scale: float) -> Critic:
    rng = np.random.default_rng(1)
    return Critic(reward, factor, scale * rng.normal(50, 10, 400), scale * rng.normal(0, 1, 400),
                  np.array([[10, scale], [20, 2 * scale]]), 1.0)


def test_locomotion_figures_draw_what_they_say():
    returns = {"medium": np.array([900.0, 1000, 1100]), "expert": np.array([3000.0, 3100])}
    fig = plots.return_histograms(returns, (20.0, 3100.0), (-20.3, 3234.3), title="hopper")
    assert len(fig.axes) == 2 and "3 episodes" in fig.axes[0].get_title()
    assert sum(p.get_height() for p in fig.axes[1].patches) == 2
    assert {line.get_xdata()[0] for line in fig.axes[0].get_lines()} == {20.0, 3100.0, -20.3, 3234.3}
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "D4RL's expert: 3,234" in labels and "the kit's random: 20" in labels
    plt.close(fig)

    critics = {"none": fake_critic("none", 1.0, 3.0), "return_range": fake_critic("return_range", 1 / 3, 1.0)}
    fig = plots.critic_figure(critics, beta=3.0)
    ax_v, ax_a, ax_c = fig.axes
    assert sum(p.get_height() for p in ax_v.patches) == 800 and ax_a.get_yscale() == "log"
    points = [line for line in ax_c.get_lines() if line.get_marker() == "o"]
    assert [p.get_ydata()[0] for p in points] == [clipped_share(c.advantages, 3.0) for c in critics.values()]
    assert points[0].get_ydata()[0] > points[1].get_ydata()[0]  # 3x the advantages: more at the clip
    plt.close(fig)

    adv = critics["none"].advantages
    fig = plots.scale_weights_figure(adv, 0.5, beta=3.0, marks={"IQL's 1000 / range": 1 / 3},
                                     measured={"critic on scaled rewards": (1 / 3, 0.02)})
    ax_w, ax_s = fig.axes
    assert sum(p.get_height() for p in ax_w.patches) == pytest.approx(1.0)
    assert f"clip: {clipped_share(0.5 * adv, 3.0):.1%}" in ax_w.texts[0].get_text()
    labels = [t.get_text() for t in ax_s.get_legend().get_texts()]
    assert any(label.startswith("c = 0.5:") for label in labels) and "critic on scaled rewards: 2.0%" in labels
    curve = ax_s.get_lines()[0].get_xdata()
    assert curve[0] == pytest.approx(0.01) and curve[-1] == pytest.approx(10.0)
    fig_far = plots.scale_weights_figure(adv, 0.5, marks={"far": 40.0})
    assert fig_far.axes[1].get_lines()[0].get_xdata()[-1] == pytest.approx(80.0)  # the curve reaches every mark
    plt.close(fig_far)
    plt.close(fig)


def test_score_curves_band_is_the_mean_plus_minus_the_std_over_seeds_and_the_table_sits_beside_the_paper():
    def run(method, seed, scores):
        rows = [{"step": s, "success_rate": 0.0, "normalized_score": v} for s, v in zip((10, 20), scores)]
        return Run(method, seed, 0.0, rows)

    runs = [run("iql", 0, (10.0, 40.0)), run("iql", 1, (20.0, 60.0)), run("bc", 0, (5.0, 5.0)),
            Run("bc", 1, float("nan"), [], "failed")]
    fig = plots.score_curves({"hopper-medium-replay": runs})
    (ax,) = fig.axes
    band = ax.collections[0].get_paths()[0].vertices
    np.testing.assert_allclose(sorted(set(band[:, 1])), [10.0, 20.0, 40.0, 60.0])  # 15 +- 5 and 50 +- 10
    mean_line = next(line for line in ax.get_lines() if line.get_label().startswith("iql"))
    np.testing.assert_allclose(mean_line.get_ydata(), [15.0, 50.0])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "iql: mean of 2 seeds, band +- std, thin lines seeds", "bc: mean of 1 seeds, band +- std, thin lines seeds"]
    plt.close(fig)

    finals = success_table(runs, "normalized_score")
    np.testing.assert_allclose(finals["iql"], [40.0, 60.0])
    assert list(finals) == ["iql", "bc"]
    table = plots.table_markdown({"hopper-medium-replay": finals}, {"hopper-medium-replay": {"iql": 94.7, "bc": 18.1}},
                                 convert=lambda s: s / 2)
    assert "| hopper-medium-replay | iql | 50.0 +- 10.0 (2) | 25.0 +- 5.0 | 94.7 |" in table
    assert "| hopper-medium-replay | bc | 5.0 +- 0.0 (1) | 2.5 +- 0.0 | 18.1 |" in table
