"""Quickstart: shape a handful of realistic reasoning-segmentation completions with the PixelThink reward.

Run with ``python examples/quickstart.py`` (or ``make demo``). No model, no GPU, no network: the completions are
written out below, as a GRPO trainer would hand them to a reward function, with the difficulty scores an external
judge gave each sample and the uncertainty the policy showed while writing it.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

from adaptive_length_reward import ColumnReward, Product, RewardBatch, SoftLengthPenalty, TieredBudget


def think(words: int, topic: str) -> str:
    """A reasoning trace of about ``words`` words."""
    base = (
        f"The question asks for the {topic}. I compare the candidate objects by colour, size and position, "
        "rule out the ones that do not match, and check the relation to the neighbouring objects. "
    ).split()
    return " ".join(base[i % len(base)] for i in range(words))


ANSWER = '<answer>{"bbox": [120, 88, 410, 360], "points_1": [200, 180], "points_2": [330, 290]}</answer>'

# (description, completion, difficulty from the judge 1..10, policy uncertainty in [0, 1], accuracy 0..5)
SAMPLES = [
    ("easy, concise", f"<think>{think(40, 'red mug')}</think>{ANSWER}", 2.0, 0.05, 5.0),
    ("easy, rambling", f"<think>{think(300, 'red mug')}</think>{ANSWER}", 2.0, 0.10, 5.0),
    ("easy, way too long", f"<think>{think(700, 'red mug')}</think>{ANSWER}", 2.5, 0.20, 5.0),
    ("medium, long", f"<think>{think(400, 'second chair from the left')}</think>{ANSWER}", 4.2, 0.30, 4.0),
    ("hard, confident", f"<think>{think(300, 'tool used to cut the bread')}</think>{ANSWER}", 7.5, 0.10, 3.0),
    ("hard, uncertain", f"<think>{think(300, 'tool used to cut the bread')}</think>{ANSWER}", 7.5, 0.90, 3.0),
    ("hard, very long", f"<think>{think(650, 'tool used to cut the bread')}</think>{ANSWER}", 8.0, 0.60, 5.0),
    ("malformed (no answer)", f"<think>{think(80, 'lamp')}", 3.0, 0.40, 0.0),
]


def main() -> None:
    # PixelThink (arXiv 2505.23727): R = R_acc * s(L, B), with B from the difficulty tier and, for hard samples,
    # the policy's uncertainty: easy (D < 3.5) B = 96 words; medium: no penalty; hard (D >= 5) B = 256 + 25 U.
    reward = Product(
        [ColumnReward("accuracy", low=0.0, high=5.0), SoftLengthPenalty(budget=TieredBudget())], name="pixelthink"
    )
    batch = RewardBatch.from_completions(
        [completion for _, completion, *_ in SAMPLES],
        difficulty=[d for *_, d, _, _ in SAMPLES],
        uncertainty=[u for *_, u, _ in SAMPLES],
        accuracy=[a for *_, a in SAMPLES],
    )
    out = reward.evaluate(batch)
    columns, components = out.columns, out.components

    header = f"{'sample':<24}{'length':>7}  {'tier':<7}{'budget':>7}{'accuracy':>10}{'length score':>14}{'reward':>9}"
    print("PixelThink reward = accuracy x soft length score\n")
    print(header)
    print("-" * len(header))
    for i, (description, *_rest) in enumerate(SAMPLES):
        budget = columns["budget"][i]
        budget_text = "none" if budget == float("inf") else f"{budget:.1f}"
        print(
            f"{description:<24}{int(columns['length'][i]):>7}  {columns['tier'][i]:<7}{budget_text:>7}"
            f"{components['accuracy'][i]:>10.1f}{components['soft_length_penalty'][i]:>14.3f}{out.rewards[i]:>9.3f}"
        )
    print(
        "\nlength = whitespace words of the whole response (PixelThink's default counter);"
        " the score falls 1/500 per word over budget."
    )


if __name__ == "__main__":
    main()
