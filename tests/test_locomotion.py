"""Locomotion data the kit makes itself (issue 26): the schema of Minari's mujoco datasets, D4RL's four modes, the
reference returns, the CLI's make-data / train path, and what it refuses."""
import json

import numpy as np
import pytest

from iqlkit.envs import locomotion
from iqlkit.envs.data import load_minari


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """Untrained SAC actors exported as the medium and expert of every env: the plumbing needs no trained agent."""
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import SAC

    from iqlkit.envs.sac import export

    folder = tmp_path_factory.mktemp("recorded")
    for env in locomotion.ENVS:
        for level, seed in (("medium", 0), ("expert", 1)):
            model = SAC("MlpPolicy", locomotion.make_env(env), policy_kwargs={"net_arch": [16, 16]}, seed=seed,
                        device="cpu")
            export(model, folder / f"{env}-{level}.json", {"env": env, "snapshot_steps": 250, "settings": {
                "seed": 0, "n_envs": 4, "hidden": [16, 16], "updates_per_step": 0.5}})
    return folder


@pytest.fixture
def kit(stand_ins, tmp_path, monkeypatch):
    monkeypatch.setattr(locomotion, "RECORDED", stand_ins)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    return tmp_path


def test_unknown_env_or_mode_lists_the_valid_ones():
    with pytest.raises(ValueError, match="hopper, halfcheetah, walker2d"):
        locomotion.dataset_id("ant", "medium")
    with pytest.raises(ValueError, match="medium, medium-replay, medium-expert, expert"):
        locomotion.dataset_id("hopper", "random")


@pytest.mark.parametrize("env", sorted(locomotion.ENVS))
@pytest.mark.parametrize("mode", locomotion.MODES)
def test_cli_makes_each_dataset_in_minaris_schema_and_trains_on_it(env, mode, kit, capsys):
    import gymnasium as gym

    from iqlkit.cli import main

    main(["make-data", "--task", env, "--mode", mode, "--data-steps", "1200", "--workers", "1", "--ref-episodes", "1",
          "--replay-run", str(kit / "replay")])
    out = capsys.readouterr().out
    dataset_id = f"iqlkit/{env}-{mode}-v0"
    assert f"wrote {dataset_id}" in out and "D4RL's random" in out
    import minari

    data = minari.load_dataset(dataset_id)
    spec = gym.make(locomotion.ENVS[env])  # the spaces Minari's mujoco/<env>/<mode>-v0 store are its env's
    assert data.observation_space == spec.observation_space and data.action_space == spec.action_space
    assert data.recover_environment().spec.id == locomotion.ENVS[env] == data.recover_environment(eval_env=True).spec.id
    assert data.total_steps == (252 if mode == "medium-replay" else 1200)  # replay: the medium's 250 steps, 4 envs
    for ep in data.iterate_episodes():
        n = len(ep.rewards)
        assert ep.observations.shape == (n + 1, spec.observation_space.shape[0]) and ep.actions.shape[0] == n
        assert ep.terminations[-1] or ep.truncations[-1]  # every episode ends, by a fall or a time-out
        assert not (ep.terminations[:-1].any() or ep.truncations[:-1].any())
        assert np.abs(ep.actions).max() <= 1
    meta = data.storage.metadata
    assert {"ref_min_score", "ref_max_score"} <= set(meta) and meta["num_episodes_average_score"] == 1
    transitions = load_minari(dataset_id, verbose=False)  # as a download loads
    assert len(transitions) == data.total_steps and transitions.obs_dim == spec.observation_space.shape[0]
    main(["train", "--dataset", dataset_id, "--steps", "4", "--eval-every", "4", "--eval-episodes", "1",
          "--final-episodes", "1", "--eval-envs", "1", "--out", str(kit / "run"), "--no-fast"])
    out = capsys.readouterr().out
    assert "locomotion: tau=0.7, beta=3.0" in out and "normalised score" in out


def test_medium_expert_is_half_medium_half_expert(kit):
    medium_expert = locomotion.generate("hopper", "medium-expert", n_steps=400, workers=1, ref_episodes=1)
    medium = locomotion.generate("hopper", "medium", n_steps=200, workers=1, ref_episodes=1)
    first = [ep.actions for ep in medium_expert.iterate_episodes()]
    np.testing.assert_array_equal(np.concatenate([ep.actions for ep in medium.iterate_episodes()]),
                                  np.concatenate(first)[:200])  # the medium half comes first, seeded as medium data


def test_medium_replay_is_the_replay_buffer_of_a_run_up_to_the_medium_step(kit):
    data = locomotion.generate("hopper", "medium-replay", n_steps=10_000, workers=1, ref_episodes=1,
                               replay_run=kit / "replay")
    state = json.loads((kit / "replay" / "state.json").read_text())
    assert state["steps"] == 252  # the stand-in medium's snapshot_steps, 250, in whole steps of its 4 envs
    assert data.total_steps == 252  # every transition of the run, none overwritten
    medium = json.loads(locomotion.policy_file("hopper", "medium").read_text())["settings"]
    locomotion.train_expert("hopper", kit / "replay", steps=400, seed=medium["seed"], n_envs=medium["n_envs"],
                            hidden=tuple(medium["hidden"]), updates_per_step=medium["updates_per_step"])
    again = locomotion.generate("hopper", "medium-replay", n_steps=10_000, workers=1, ref_episodes=1,
                                replay_run=kit / "replay")  # a run that went past the medium: read up to its step
    assert again.total_steps == 252
    np.testing.assert_array_equal(np.concatenate([ep.actions for ep in again.iterate_episodes()]),
                                  np.concatenate([ep.actions for ep in data.iterate_episodes()]))


def test_compare_keeps_whole_episodes_and_reports_normalised_scores(kit, capsys):
    """Locomotion rewards are positive at every step: no episode is cut at a 'first success', and compare's table
    is in D4RL's normalised score."""
    from iqlkit.cli import load_for_training, main, parser

    locomotion.generate("hopper", "medium", n_steps=600, workers=1, ref_episodes=1)
    args = ["--dataset", "iqlkit/hopper-medium-v0", "--out", str(kit / "runs"), "--eval-episodes", "1",
            "--eval-envs", "1"]
    _, data, evaluation = load_for_training(parser().parse_args(["compare", *args]))
    assert len(data) == 600 and evaluation.references is not None
    main(["compare", *args, "--methods", "iql", "bc", "--seeds", "0", "--steps", "4", "--n-evals", "1",
          "--workers", "1", "--no-tensorboard"])
    assert "| method | normalized score (mean +- std)" in capsys.readouterr().out
    rows = (kit / "runs" / "compare" / "iqlkit_hopper-medium-v0" / "results.csv").read_text().splitlines()
    assert "normalized_score" in rows[0] and len(rows) == 3


def test_policy_data_does_not_depend_on_the_number_of_workers(kit):
    policy = str(locomotion.policy_file("hopper", "medium"))
    one, two = (locomotion.policy_data("hopper", policy, 700, seed=3, workers=w) for w in (1, 2))
    assert sum(len(ep["rewards"]) for ep in one) == 700
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a["actions"], b["actions"])


def test_pick_levels_takes_the_best_and_a_third_of_it_before():
    measured = [{"steps": s, "return": r, "path": str(s)} for s, r in
                ((10, 50.0), (20, 900.0), (30, 1100.0), (40, 3000.0), (50, 2500.0))]
    levels = locomotion.pick_levels(measured)
    assert levels["expert"]["steps"] == 40 and levels["medium"]["steps"] == 20  # 900 is closest to 3000 / 3 = 1000


def test_no_option_hides_a_commands_handler():
    """`args.run` is the sub-command's handler: an option whose dest is `run` (expert ship's --run) would replace it."""
    import argparse

    from iqlkit.cli import expert_ship, parser

    def options(p: argparse.ArgumentParser):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from options(sub)
            else:
                yield action.dest

    assert "run" not in set(options(parser()))
    args = parser().parse_args(["expert", "ship", "--env", "hopper", "--run", "runs/x"])
    assert args.run is expert_ship and args.run_folder == "runs/x"
