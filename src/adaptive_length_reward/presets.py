"""Ready-made rewards: PixelThink's official reward and Seg-Zero's, built from the library's parts.

PixelThink (arXiv 2505.23727, Sec. 3.3; official ``verl/utils/reward_score/seg_pixelthink.py``)::

    R = R_acc * s(L, B)
    R_acc = thinking_format + segmentation_format + box_iou + point_match + box_l1        in [0, 5]
    s(L, B) = clip(1 - beta * max(0, L - B), 0, 1),  beta = 1/500
    B = 96 (D < 3.5);  no penalty (3.5 <= D < 5.0);  256 + 25 * U (D >= 5.0)
    L = len(response.split())   (or the tokenizer tokens of the <think> content)

Seg-Zero's reward (arXiv 2503.06520, official ``seg_restrict.py``) is ``R_acc`` alone. Missing context is never
guessed by default. See docs/segmentation.md.
"""

from __future__ import annotations

import functools
import math
import numbers
import re
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from .batch import RewardBatch
from .budgets import BudgetPolicy, TieredBudget
from .length import LengthCounter, PrecomputedLength, Tokenized, WhitespaceWords
from .penalties import SoftLengthPenalty
from .reward import Product, Reward
from .segmentation import SegmentationAccuracy

__all__ = ["PixelThinkReasoningTokens", "official_reasoning_text", "pixelthink", "pixelthink_score", "seg_zero"]

LengthMode = Literal["words", "reasoning_tokens"]

_THINK_SPAN = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def official_reasoning_text(response: str) -> str:
    """The ``<think>`` content the official token mode counts: the first complete ``<think>...</think>`` span,
    stripped; ``""`` when there is none (official ``verl/utils/reward_score/length.py::extract_reasoning``).

    Unlike the library's [`extract_reasoning`][], a truncated completion (no
    closing tag) has no reasoning here, so its length is 0.

    >>> official_reasoning_text("<think>  two words \\n</think><answer>x</answer>")
    'two words'
    >>> official_reasoning_text("<think>cut off")
    ''
    """
    found = _THINK_SPAN.search(response)
    return found.group(1).strip() if found else ""


class PixelThinkReasoningTokens(Tokenized, kind="pixelthink_reasoning_tokens"):
    """Tokenizer tokens (``add_special_tokens=False``) of the official reasoning text,
    [`official_reasoning_text`][] (PixelThink's ``reward_reasoning_tokens`` mode).

    Where a chat message carried the reasoning separately (``reasoning_content``/``thinking``, kept in
    ``RewardBatch.reasoning``), that text, stripped, is counted instead.
    """

    def _count(self, batch: RewardBatch) -> Any:
        separate = batch.reasoning or (None,) * len(batch)
        pairs = zip(batch.completions, separate)
        return self._tokens([official_reasoning_text(text) if r is None else r.strip() for text, r in pairs])


def _length_counter(length: LengthMode | LengthCounter, tokenizer: Any) -> LengthCounter:
    counter = isinstance(length, LengthCounter)
    if not counter and length not in ("words", "reasoning_tokens"):
        raise ValueError(f"pixelthink: length: expected 'words', 'reasoning_tokens' or a LengthCounter, got {length!r}")
    tokens = not counter and length == "reasoning_tokens"
    if (tokenizer is None) == tokens:  # only the reasoning-token count tokenizes
        expected = "a tokenizer or a local path" if tokens else "None"
        given = "a LengthCounter" if counter else f"length={length!r}"
        raise ValueError(f"pixelthink: tokenizer: expected {expected} with {given}, got {tokenizer!r:.80}")
    if isinstance(length, LengthCounter):
        return length
    return PixelThinkReasoningTokens(tokenizer) if tokens else WhitespaceWords()


def seg_zero(
    *,
    iou_threshold: float = 0.5,
    box_l1_threshold: float = 10.0,
    point_threshold: float = 100.0,
    ground_truth_column: str = "ground_truth",
    name: str | None = "seg_zero",
) -> SegmentationAccuracy:
    """Seg-Zero's reward (official ``seg_strict_compute_score``): the five-term accuracy sum, in ``[0, 5]``.

    Needs the batch column ``ground_truth`` (or ``ground_truth_column``). ``name=None`` keeps the accuracy's own
    name (``segmentation_accuracy``, as inside [`pixelthink`][]).

    >>> gt = "<box>(0,0),(99,99)</box><points>(20,20),(70,70)</points>"
    >>> answer = '<think>x</think><answer>{"bbox": [0, 0, 99, 99], "points_1": [20, 20], "points_2": [70, 70]}</answer>'
    >>> seg_zero()(completions=[answer], ground_truth=[gt]).tolist()
    [5.0]

    Args:
        iou_threshold: box IoU term: IoU > this passes (official 0.5).
        box_l1_threshold: box L1 term: mean L1 < this passes (official 10).
        point_threshold: point term: matched distance < this passes (official 100).
        ground_truth_column: the batch column holding the ground truth.
        name: the reward's name; ``None``: ``segmentation_accuracy``.

    Returns:
        The [`SegmentationAccuracy`][] reward.
    """
    return SegmentationAccuracy(
        iou_threshold=iou_threshold,
        box_l1_threshold=box_l1_threshold,
        point_threshold=point_threshold,
        column=ground_truth_column,
        name=name,
    )


def pixelthink(
    *,
    length: LengthMode | LengthCounter = "words",
    tokenizer: Any = None,
    missing_difficulty: float | str = "error",
    missing_uncertainty: float | Literal["error"] = "error",
    budget: BudgetPolicy | None = None,
    beta: float = 1 / 500,
    iou_threshold: float = 0.5,
    box_l1_threshold: float = 10.0,
    point_threshold: float = 100.0,
    ground_truth_column: str = "ground_truth",
    name: str = "pixelthink",
) -> Product:
    """PixelThink's official reward: ``SegmentationAccuracy() * SoftLengthPenalty(TieredBudget())``, in ``[0, 5]``.

    Reads the batch columns ``ground_truth``, ``difficulty`` (1..10 judge score) and, for hard samples
    (``D >= 5``), ``uncertainty`` (in [0, 1]). Components ``segmentation_accuracy/<term>`` and
    ``soft_length_penalty`` and the columns ``length``, ``budget``, ``tier`` are reported by ``evaluate``.

    ``length`` is ``"words"`` (the official default), ``"reasoning_tokens"`` (the official alternative,
    [`PixelThinkReasoningTokens`][]; needs ``tokenizer``, a tokenizer or a local path) or any
    [`LengthCounter`][]. ``missing_difficulty`` (``"error"``, a value or a tier
    name) and ``missing_uncertainty`` (``"error"`` or a value) configure the default ``TieredBudget()``; the
    official fallbacks are 3.0 and 0.0. A ``budget=`` policy replaces it and carries its own fallbacks. The other
    options are the official constants (docs/segmentation.md); ``name`` is the name TRL logs.

    >>> gt = "<box>(0,0),(99,99)</box><points>(20,20),(70,70)</points>"
    >>> answer = '<think>x</think><answer>{"bbox": [0, 0, 99, 99], "points_1": [20, 20], "points_2": [70, 70]}</answer>'
    >>> long = "<think>" + "word " * 335 + answer[len("<think>"):]   # 346 words: 250 over the easy budget
    >>> pixelthink()(completions=[answer, long], ground_truth=[gt, gt], difficulty=[2.0, 2.0]).tolist()
    [5.0, 2.5]

    Args:
        length: ``"words"``, ``"reasoning_tokens"`` or a [`LengthCounter`][].
        tokenizer: a tokenizer or a local path, for ``length="reasoning_tokens"``.
        missing_difficulty: a sample without difficulty: ``"error"``, a tier name or a difficulty value.
        missing_uncertainty: a hard sample without uncertainty: ``"error"`` or the U to use.
        budget: a budget policy replacing ``TieredBudget()`` (with its own fallbacks).
        beta: the soft length score's slope (official 1/500: 0 at 500 over budget).
        iou_threshold: box IoU term: IoU > this passes (official 0.5).
        box_l1_threshold: box L1 term: mean L1 < this passes (official 10).
        point_threshold: point term: matched distance < this passes (official 100).
        ground_truth_column: the batch column holding the ground truth.
        name: the reward's name (what TRL logs).

    Returns:
        ``Product([accuracy, soft length score])``, named ``name``.

    Raises:
        ValueError: ``missing_difficulty``/``missing_uncertainty`` given together with ``budget=``.
    """
    accuracy = seg_zero(
        iou_threshold=iou_threshold,
        box_l1_threshold=box_l1_threshold,
        point_threshold=point_threshold,
        ground_truth_column=ground_truth_column,
        name=None,
    )
    if budget is None:
        budget = TieredBudget(missing_difficulty=missing_difficulty, missing_uncertainty=missing_uncertainty)
    elif (missing_difficulty, missing_uncertainty) != ("error", "error"):
        raise ValueError(
            "pixelthink: missing_difficulty/missing_uncertainty: expected the defaults when budget= is given "
            f"(set them on the budget policy), got {missing_difficulty!r}, {missing_uncertainty!r}"
        )
    penalty = SoftLengthPenalty(budget=budget, length=_length_counter(length, tokenizer), beta=beta)
    return Product([accuracy, penalty], name=name)


@functools.cache
def _per_sample_reward(given_length: bool) -> Reward:
    return pixelthink(length=PrecomputedLength() if given_length else "words")


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"pixelthink_score: {name}: expected a finite number, got {value!r}")
    return float(value)


def pixelthink_score(
    completion: str,
    ground_truth: str | Mapping[str, Any],
    *,
    difficulty: float,
    uncertainty: float = 0.0,
    length: int | None = None,
) -> float:
    """PixelThink's reward for one completion, the official ``seg_pixelthink_compute_score`` in word mode.

    Uses the same objects as [`pixelthink`][] (one-sample batch), so it checks the preset, not a copy.

    ``ground_truth`` is the official string ``<box>(x1,y1),(x2,y2)</box><points>(x1,y1),(x2,y2)</points>`` or a
    mapping ([`parse_ground_truth`][adaptive_length_reward.segmentation.parse_ground_truth]); ``difficulty`` is required
    (the official loader's fallback is 3.0); ``uncertainty >= 0`` (official default 0.0); ``length=None`` counts the
    whitespace words of the whole completion. Returns the reward, in ``[0, 5]``.

    >>> gt = "<box>(0,0),(99,99)</box><points>(20,20),(70,70)</points>"
    >>> answer = '<think>x</think><answer>{"bbox": [0, 0, 99, 99], "points_1": [20, 20], "points_2": [70, 70]}</answer>'
    >>> pixelthink_score(answer, gt, difficulty=2.0, length=346)
    2.5

    Args:
        completion: the model's completion.
        ground_truth: the official ground-truth string or a mapping.
        difficulty: the sample's difficulty (1..10).
        uncertainty: the policy's uncertainty ``U >= 0`` (used by the hard tier).
        length: the reasoning length; ``None`` counts the completion's whitespace words.

    Returns:
        The reward, in ``[0, 5]``.

    Raises:
        TypeError: ``ground_truth`` is neither a string nor a mapping.
        ValueError: a non-finite ``difficulty`` or ``uncertainty``, a negative ``uncertainty``, or a ``length``
            that is not an int >= 0.
    """
    if not isinstance(ground_truth, (str, Mapping)):
        given = type(ground_truth).__name__
        raise TypeError(f"pixelthink_score: ground_truth: expected the official string or a mapping, got {given}")
    d, u = _finite("difficulty", difficulty), _finite("uncertainty", uncertainty)
    if u < 0:
        raise ValueError(f"pixelthink_score: uncertainty: expected a number >= 0, got {uncertainty!r}")
    if length is not None and (isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0):
        raise ValueError(f"pixelthink_score: length: expected None or an int >= 0, got {length!r}")
    batch = RewardBatch(
        (completion,),
        ground_truth=(ground_truth,),
        difficulty=np.array([d]),
        uncertainty=np.array([u]),
        lengths=None if length is None else np.array([float(length)]),
    )
    return float(_per_sample_reward(length is not None)(batch)[0])
