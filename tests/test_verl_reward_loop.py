"""verl's own ``RewardLoopManager`` end to end on a local Ray cluster bound to 127.0.0.1: Ray starts verl's
``RewardLoopWorker`` actors, which ``import verl`` (the plugin registers ``adaptive_length`` there, lazily), load the
manager by name and ``compute_score`` by ``pkg://`` path from the config, and score a real ``DataProto``; the driver
assembles ``rm_scores`` and the extra-info columns as in training. Runs in the verl venv (``make test-verl``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

verl = pytest.importorskip("verl", reason="the verl adapter needs verl: make test-verl (docs/verl.md, 'Install')")
ray = pytest.importorskip("ray", reason="verl's reward loop runs on Ray")

from adapter_fixtures import build_tokenizer  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from test_adapters_verl import _answer, _data_proto, _expected, _manager_config, _run  # noqa: E402

pytestmark = pytest.mark.slow


def _config(tokenizer_dir: Path, **reward_kwargs: Any) -> Any:
    config = _manager_config(**reward_kwargs)
    return OmegaConf.merge(
        config,
        {
            "actor_rollout_ref": {"model": {"path": str(tokenizer_dir), "tokenizer_path": None}},
            "reward": {"num_workers": 2, "reward_model": {"enable": False, "enable_resource_pool": False}},
        },
    )


@pytest.fixture(scope="module")
def local_ray() -> Any:
    """A Ray cluster of this process, every service on 127.0.0.1. Ray replaces a loopback ``_node_ip_address`` by
    the machine's reachable address unless clusters are off (``ray/_private/services.py::get_node_ip_address``,
    ``ENABLE_RAY_CLUSTER``, read from ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` when ray is imported, here already)."""
    import ray._private.ray_constants as ray_constants

    saved, ray_constants.ENABLE_RAY_CLUSTER = ray_constants.ENABLE_RAY_CLUSTER, False
    env = {
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        object_store_memory=200 * 2**20,
        runtime_env={"env_vars": env},
        log_to_driver=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        ray_constants.ENABLE_RAY_CLUSTER = saved


def test_reward_loop_manager_scores_on_ray_workers(local_ray: Any, tmp_path: Path) -> None:
    from verl.experimental.reward_loop.reward_loop import RewardLoopManager

    assert [node["NodeManagerAddress"] for node in ray.nodes()] == ["127.0.0.1"]
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    config = _config(tmp_path / "tokenizer", uncertainty_measure="nll")
    responses = [_answer(60), _answer(120), _answer(30), _answer(200)]
    infos = [
        {"difficulty": 2.0, "index": 0},
        {"difficulty": 4.0, "index": 1},
        {"difficulty": 9.0, "index": 2},
        {"difficulty": 7.0, "index": 3},
    ]
    data = _data_proto(tokenizer, responses, infos)
    manager = RewardLoopManager(config)
    assert manager.reward_manager_cls.__name__ == "AdaptiveLengthRewardManager"  # resolved by name in the driver
    out = manager.compute_rm_score(data)

    # the same batch scored in this process by the same manager class
    from verl.trainer.ppo.reward import load_reward_manager

    local = _run(load_reward_manager(config, tokenizer), data)
    scores = out.batch["rm_scores"]
    assert scores.shape == data.batch["responses"].shape
    np.testing.assert_allclose(scores.sum(-1).numpy(), [r["reward_score"] for r in local], rtol=1e-6)
    keys = out.meta_info["reward_extra_keys"]
    assert keys == list(local[0]["reward_extra_info"])
    assert {"score", "length", "budget", "tier", "budgeted"} <= set(keys)
    for key in keys:
        np.testing.assert_allclose(
            out.non_tensor_batch[key].astype(float), [r["reward_extra_info"][key] for r in local], rtol=1e-6
        )
    assert np.isfinite(out.non_tensor_batch["budget"].astype(float)).all()  # the medium tier's budget too
    lengths = out.non_tensor_batch["length"].astype(float)
    assert out.non_tensor_batch["score"][0] == pytest.approx(_expected(lengths[0], 96.0))
    assert os.environ.get("RAY_ADDRESS") is None  # a cluster of its own, not one found on the machine
