"""The worked example's command line: ``--recipe pixelthink`` (the official training yaml), ``--config FILE``,
``--report-to``, and its error conventions (argument errors: exit 2 with usage; bad paths: exit 2, one line).

Only failing paths run the script in a subprocess (they exit before any model is built); everything else calls
the parse functions directly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCRIPT = str(EXAMPLES / "pixelthink_grpo.py")
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

import pixelthink_grpo  # noqa: E402
from pixelthink.training import TrainSettings, grpo_config_kwargs  # noqa: E402

#: PixelThink's official training yaml, as the issue lists it, and the TRL knob each value lands on.
OFFICIAL_GRPO_CONFIG = {
    "per_device_train_batch_size": 8,  # micro-batch (memory only) ...
    "gradient_accumulation_steps": 16,  # ... x 16 = 128 completions = 16 prompts x n = 8 per optimizer step
    "num_generations": 8,
    "temperature": 1.0,
    "learning_rate": 1e-6,
    "weight_decay": 1e-2,
    "max_grad_norm": 1.0,
    "beta": 5e-3,  # KL as a loss term, TRL's k3 estimator (verl's low_var_kl)
    "epsilon": 0.2,
    "max_completion_length": 1300,
    "loss_type": "grpo",  # per-sequence token mean, averaged over sequences
}


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, SCRIPT, *argv], capture_output=True, text=True, timeout=120, cwd=cwd)


def _settings(args: Any) -> TrainSettings:
    """The TrainSettings ``main`` builds from the parsed arguments (bf16 as on a CUDA machine)."""
    settings: TrainSettings = pixelthink_grpo.build_train_settings(args, bf16=True, checkpointing=False)
    return settings


@pytest.fixture()
def checkpoints(tmp_path: Path) -> tuple[str, str]:
    policy, segmenter = tmp_path / "Qwen2.5-VL-7B-Instruct", tmp_path / "sam2"
    policy.mkdir()
    segmenter.mkdir()
    return str(policy), str(segmenter)


# ------------------------------------------------------------------------------------------------------------
# --recipe pixelthink
# ------------------------------------------------------------------------------------------------------------


def test_recipe_pixelthink_resolves_to_the_official_values(checkpoints: tuple[str, str]) -> None:
    policy, segmenter = checkpoints
    args = pixelthink_grpo.parse_args(["--recipe", "pixelthink", "--policy", policy, "--segmenter", segmenter])
    assert (args.prompts_per_step, args.num_generations, args.micro_batch_size) == (16, 8, 8)
    assert args.steps is None  # one epoch over the training data, fixed once it is loaded
    assert args.param_dtype == "float32" and args.bf16 is None  # bf16 autocast on CUDA, float32 weights
    args.steps = 563  # 9k prompts / 16 per step
    kwargs = grpo_config_kwargs(_settings(args), "ckpt", cuda=True)
    assert {k: kwargs[k] for k in OFFICIAL_GRPO_CONFIG} == OFFICIAL_GRPO_CONFIG
    assert kwargs["bf16"] is True and kwargs["report_to"] == "none"
    assert kwargs["model_init_kwargs"] == {"dtype": "bfloat16"}  # the frozen KL reference only
    trl = pytest.importorskip("trl")
    config = trl.GRPOConfig(**{**kwargs, "use_cpu": True, "bf16": False, "model_init_kwargs": None})
    assert config.generation_batch_size == 128 and config.steps_per_generation == 16  # one rollout per step
    assert config.loss_type == "grpo" and config.beta == 5e-3 and config.epsilon == 0.2


def test_recipe_values_are_overridden_by_explicit_flags(checkpoints: tuple[str, str]) -> None:
    policy, segmenter = checkpoints
    args = pixelthink_grpo.parse_args(
        [
            "--recipe",
            "pixelthink",
            "--policy",
            policy,
            "--segmenter",
            segmenter,
            "--lr",
            "2e-6",
            "--prompts-per-step",
            "4",
            "--loss-type",
            "dapo",
            "--steps",
            "10",
            "--micro-batch-size",
            "4",
        ]
    )
    assert (args.lr, args.prompts_per_step, args.loss_type, args.steps, args.micro_batch_size) == (
        2e-6,
        4,
        "dapo",
        10,
        4,
    )
    assert args.num_generations == 8 and args.kl == 5e-3  # the rest stays the recipe's


def test_without_a_recipe_the_full_defaults_are_unchanged(checkpoints: tuple[str, str]) -> None:
    policy, segmenter = checkpoints
    args = pixelthink_grpo.parse_args(["--policy", policy, "--segmenter", segmenter])
    assert (args.prompts_per_step, args.steps, args.loss_type, args.micro_batch_size) == (2, 500, "dapo", None)
    tiny = pixelthink_grpo.parse_args(["--tiny"])
    assert args.length_unit == "words"  # PixelThink's: whitespace words of the response
    assert (tiny.lr, tiny.kl, tiny.temperature, tiny.weight_decay, tiny.report_to) == (2.5e-4, 0.2, 1.0, 1e-2, "none")
    assert (tiny.length_unit, tiny.prompts_per_step, tiny.steps) == ("reasoning_tokens", 4, 50)


def test_recipe_rejects_tiny_and_requires_a_local_policy(tmp_path: Path) -> None:
    result = _run("--tiny", "--recipe", "pixelthink", cwd=tmp_path)
    assert result.returncode == 2 and "usage:" in result.stderr and "--recipe pixelthink" in result.stderr
    result = _run("--recipe", "pixelthink", "--segmenter", "random:sam", cwd=tmp_path)
    assert result.returncode == 2
    assert "--policy: expected a local Qwen2.5-VL-7B-Instruct checkpoint directory" in result.stderr


# ------------------------------------------------------------------------------------------------------------
# --report-to, --config
# ------------------------------------------------------------------------------------------------------------


def test_report_to_reaches_trl(checkpoints: tuple[str, str]) -> None:
    policy, segmenter = checkpoints
    args = pixelthink_grpo.parse_args(["--policy", policy, "--segmenter", segmenter, "--report-to", "tensorboard"])
    assert grpo_config_kwargs(_settings(args), "ckpt", cuda=False)["report_to"] == "tensorboard"


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_config_file_values_are_used_and_flags_override_them(tmp_path: Path, suffix: str) -> None:
    values = {
        "tiny": True,
        "lr": 3e-4,
        "prompts-per-step": 3,
        "loss_type": "grpo",
        "bf16": False,
        "report-to": "tensorboard",
        "no-progress": True,
        "output-dir": str(tmp_path / "run"),
    }
    config = tmp_path / f"run{suffix}"
    if suffix == ".json":
        config.write_text(json.dumps(values))
    else:
        yaml = pytest.importorskip("yaml")
        config.write_text(yaml.safe_dump(values))
    args = pixelthink_grpo.parse_args(["--config", str(config)])
    assert (
        args.tiny,
        args.lr,
        args.prompts_per_step,
        args.loss_type,
        args.bf16,
        args.report_to,
        args.no_progress,
        args.output_dir,
    ) == (True, 3e-4, 3, "grpo", False, "tensorboard", True, str(tmp_path / "run"))
    assert args.steps == 50  # not in the file: the tiny default
    args = pixelthink_grpo.parse_args(["--config", str(config), "--lr", "1e-3", "--bf16", "--report-to", "none"])
    assert (args.lr, args.bf16, args.report_to, args.prompts_per_step) == (1e-3, True, "none", 3)


def test_config_file_errors(tmp_path: Path) -> None:
    unknown = tmp_path / "bad.yaml"
    unknown.write_text("tiny: true\nlearning-rate: 1.0e-6\n")
    result = _run("--config", str(unknown), cwd=tmp_path)
    assert result.returncode == 2 and "usage:" in result.stderr and "unknown option 'learning-rate'" in result.stderr
    result = _run("--config", str(tmp_path / "missing.yaml"), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"pixelthink_grpo.py: error: --config: expected a YAML or JSON file, got "
        f"'{tmp_path / 'missing.yaml'}' (no such file)"
    ]


# ------------------------------------------------------------------------------------------------------------
# Error conventions
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--tiny", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["--tiny", "--steps", "many"], "--steps: invalid int value: 'many'"),
        (["--tiny", "--steps", "0"], "--steps: expected an int >= 1, got 0"),
        (["--tiny", "--lr", "-1"], "--lr: expected a number > 0, got -1.0"),
        (["--tiny", "--param-dtype", "float16"], "--param-dtype: invalid choice: 'float16'"),
        (["--tiny", "--loss-type", "ppo"], "loss_type: expected one of grpo"),
        (["--tiny", "--micro-batch-size", "3"], "micro_batch_size: expected a divisor of"),
    ],
)
def test_argument_errors_exit_2_with_usage(tmp_path: Path, argv: list[str], message: str) -> None:
    result = _run(*argv, "--output-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("usage: pixelthink_grpo.py") and message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("flag", ["--train-data", "--eval-data", "--difficulty-table"])
def test_a_missing_input_path_is_one_clean_line(tmp_path: Path, flag: str) -> None:
    missing = tmp_path / "no-such-data"
    result = _run("--tiny", flag, str(missing), "--output-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"pixelthink_grpo.py: error: {flag}: expected an existing file or folder, got '{missing}'"
    ]
    assert not (tmp_path / "run").exists()  # nothing was built or written


def test_a_train_data_folder_that_does_not_load_is_one_clean_line(tmp_path: Path) -> None:
    folder = tmp_path / "empty-folder"
    folder.mkdir()
    result = _run("--tiny", "--train-data", str(folder), "--output-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pixelthink_grpo.py: error: {folder}: ")


def test_a_missing_checkpoint_directory_is_one_clean_line(tmp_path: Path) -> None:
    result = _run("--policy", str(tmp_path / "qwen"), "--segmenter", "random:sam", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"pixelthink_grpo.py: error: --policy: expected a local checkpoint directory, got "
        f"'{tmp_path / 'qwen'}' (no such folder)"
    ]


def test_bfloat16_parameters_need_the_flag_and_warn(
    checkpoints: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    policy, segmenter = checkpoints
    args = pixelthink_grpo.parse_args(["--policy", policy, "--segmenter", segmenter])
    assert args.param_dtype == "float32" and pixelthink_grpo.warn_precision(args) is None
    args = pixelthink_grpo.parse_args(["--policy", policy, "--segmenter", segmenter, "--param-dtype", "bfloat16"])
    with caplog.at_level("WARNING", logger="pixelthink_grpo"), pytest.warns(UserWarning, match="at lr 1e-06"):
        message = pixelthink_grpo.warn_precision(args)
    assert message is not None and "round away" in message and message in caplog.text


def test_init_policy_with_a_warm_start_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    saved = tmp_path / "reference-policy"
    saved.mkdir()
    (saved / "config.json").write_text("{}")
    with caplog.at_level("WARNING", logger="pixelthink_grpo"):
        args = pixelthink_grpo.parse_args(["--tiny", "--init-policy", str(saved)])
    assert args.warmup_steps == 400 and "warm-started again" in caplog.text and "--warmup-steps 0" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="pixelthink_grpo"):
        args = pixelthink_grpo.parse_args(["--tiny", "--init-policy", str(saved), "--warmup-steps", "0"])
    assert args.warmup_steps == 0 and "warm-started again" not in caplog.text
