"""Evaluation as Seg-Zero and PixelThink run it, with wall-clock timing of every stage.

Per batch of samples (Seg-Zero ``evaluation_scripts/evaluation.py``):

1. greedy decoding of the policy on the ``frame`` x ``frame`` image; timed as *prefill* (until the first new
   token exists) and *decode* (the rest);
2. answer parsing under the evaluation ``convention`` (:mod:`adaptive_length_reward.conventions`): ``"lisa"``
   (default) with the reward's own parser (:func:`adaptive_length_reward.segmentation.parse_answer`), or
   ``"seg_zero"`` as Seg-Zero's script (keys matched by substring, ``int()`` on coordinates, a ``<think>`` block
   required); coordinates are rescaled to the original image by ``W / frame`` and ``H / frame`` with rounding;
3. SAM / SAM2 prompted with the box and both points, best of the multimask outputs (timed); SAM is also run
   with the ground-truth box and points (``sam_oracle_giou``: the ceiling of any policy's prompts, and a SAM
   latency measured on every sample even when the policy's answers do not parse);
4. intersection and union against the ground-truth mask (:class:`adaptive_length_reward.conventions.ConventionIoU`):
   ``lisa`` excludes LISA's ignore pixels (label 255) and counts an empty union as IoU 1; ``seg_zero`` counts the
   ignore pixels as target (Seg-Zero's ReasonSeg copy) and skips a sample with an empty union (its script writes no
   record for it, so the report's gIoU, cIoU and token rows leave it out; the reward components and budget
   adherence cover every completion). A completion without a box and two points counts ``I = 0, U = |GT|``.

Reasoning length is the paper's ``#Token``: tokenizer tokens of the first ``<think>...</think>`` content
(:class:`adaptive_length_reward.presets.PixelThinkReasoningTokens`). Budget adherence is the share of
completions whose length (in the reward's unit) is within the PixelThink budget of their tier (always true for
the medium tier, which has none), i.e. where the soft length score is 1. The policy's uncertainty on its own
greedy answer (top-2 margin or entropy from the decoding logits) feeds the hard-tier budget.

The difficulty tiers come from the source that trained the policy (``--difficulty``, :func:`eval_difficulty`):
the samples' own values for ``dataset`` and ``judge`` (the judge writes its scores into the samples), the same
:class:`~adaptive_length_reward.difficulty.HeuristicDifficulty` scorer for ``heuristic``; ``online`` has none for
held-out samples (a pass rate needs a group of the policy's own sampled answers, and evaluation decodes one greedy
answer per prompt). A sample without a difficulty from the source is tiered at ``missing_difficulty``, and the
pass says so: ``tiers_valid`` is false and ``tiers_note`` counts the fallbacks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from adaptive_length_reward import RewardBatch
from adaptive_length_reward.conventions import (
    Convention,
    ConventionIoU,
    SegmentationPrompt,
    check_convention,
    convention_note,
    parse_prompt,
    prepare_ground_truth,
    rescale_prompt,
)
from adaptive_length_reward.errors import import_optional
from adaptive_length_reward.metrics import SegmentationReport, budget_adherence, difficulty_tiers
from adaptive_length_reward.presets import PixelThinkReasoningTokens
from adaptive_length_reward.reward import Reward

from .models import Policy, Segmenter
from .prompts import conversation
from .report import record_iou
from .rewards import RewardSettings, budget_policy, difficulty_providers, reference_penalty
from .scenes import SegSample
from .training import mask_area_ratio, policy_image

__all__ = [
    "EvalDifficulty",
    "EvalResult",
    "bootstrap_interval",
    "eval_difficulty",
    "evaluate",
    "generate_completions",
    "paired_difference_interval",
    "paired_ious",
    "record_ious",
    "score_completions",
]

TIERS = ("easy", "medium", "hard")


#: Why a sample has no difficulty from each source (quoted in ``tiers_note``).
_MISSING_REASON = {
    "dataset": "no difficulty in the data or the difficulty table",
    "heuristic": "no mask area or expression for the heuristic scorer",
    "judge": "no score from the difficulty judge",
    "online": "the online pass rate needs a group of the policy's own sampled answers per prompt, and evaluation "
    "decodes one greedy answer per prompt, so held-out samples have no difficulty from this source",
}


@dataclass(frozen=True)
class EvalDifficulty:
    """The evaluation samples' difficulty from the training's source.

    Attributes:
        source: the training's ``--difficulty`` source (:data:`~.rewards.DIFFICULTY_SOURCES`).
        values: per sample, the source's difficulty, or ``fallback`` where it has none.
        fell_back: per sample, whether ``values`` holds the fallback.
        fallback: ``missing_difficulty`` of the reward settings.
    """

    source: str
    values: np.ndarray
    fell_back: np.ndarray
    fallback: float

    @property
    def valid(self) -> bool:
        """Whether every sample has a difficulty of its own from the source (the tiers mean what they say)."""
        return not bool(self.fell_back.any())

    @property
    def note(self) -> str | None:
        """``None`` when valid; otherwise the line that marks the per-tier numbers."""
        if self.valid:
            return None
        return (
            f"per-tier rows use the fallback difficulty {self.fallback:g} for {int(self.fell_back.sum())} of "
            f"{self.fell_back.size} samples (difficulty source {self.source!r}: {_MISSING_REASON[self.source]}); "
            "the tiers of those samples are not their difficulty"
        )


def eval_difficulty(samples: Sequence[SegSample], settings: RewardSettings) -> EvalDifficulty:
    """Each sample's difficulty from ``settings.difficulty``, the source training used (module docstring).

    ``dataset`` and ``judge``: ``sample.difficulty``; ``heuristic``: the training's
    :class:`~adaptive_length_reward.difficulty.HeuristicDifficulty` on the mask area ratio and the query;
    ``online``: none. NaN becomes ``settings.missing_difficulty``, marked in ``fell_back``.
    """
    source = settings.difficulty
    if source == "heuristic":
        scorer = difficulty_providers(settings, missing="nan")[0]  # training's scorer; fallbacks stay NaN, counted
        batch = RewardBatch.from_completions(
            [""] * len(samples), query=[s.query for s in samples], mask_area_ratio=[mask_area_ratio(s) for s in samples]
        )
        raw = np.asarray(scorer(batch), dtype=np.float64) if len(samples) else np.zeros(0)
    elif source == "online":
        raw = np.full(len(samples), np.nan)
    else:  # "dataset", "judge" (judged scores are written into the samples)
        raw = np.array([s.difficulty for s in samples], dtype=np.float64)
    fell_back = np.isnan(raw)
    return EvalDifficulty(
        source=source,
        values=np.where(fell_back, settings.missing_difficulty, raw),
        fell_back=fell_back,
        fallback=float(settings.missing_difficulty),
    )


@dataclass
class EvalResult:
    """One evaluation pass: per-sample records, the library's report, and timings in seconds."""

    records: list[dict[str, Any]]
    report: SegmentationReport
    timings: dict[str, float]
    reward_components: dict[str, float]
    budget_adherence: float
    budget_adherence_by_tier: dict[str, float | None]
    sam_oracle_giou: float = math.nan
    sam_oracle_ciou: float = math.nan
    notes: list[str] = field(default_factory=list)
    difficulty_source: str = "dataset"
    difficulty_fallbacks: int = 0
    fallback_difficulty: float = 3.0
    tiers_note: str | None = None
    #: ``segmenter.predict`` calls on the policy's answers (one per parsed answer; the oracle calls not counted).
    segmenter_calls: int = 0
    #: The evaluation convention (:data:`adaptive_length_reward.conventions.Convention`).
    convention: str = "lisa"
    #: Samples left out of gIoU/cIoU (``seg_zero``: an empty union); their records have ``counted`` False.
    skipped_samples: int = 0

    @property
    def parsed_answers(self) -> int:
        """Policy answers that parsed into a box and two points (each is segmented once)."""
        return sum(bool(r["parsed"]) for r in self.records)

    @property
    def ious(self) -> np.ndarray:
        """Per-sample IoU of the samples gIoU counts, in the records' order (a failed parse counts 0; an empty
        union 1 under ``lisa``, skipped under ``seg_zero``), as gIoU does."""
        return np.asarray([iou for iou in record_ious(self.records) if iou is not None])

    @property
    def tiers_valid(self) -> bool:
        """Whether every sample's tier comes from its own difficulty from the training's source."""
        return self.difficulty_fallbacks == 0

    def summary(self) -> dict[str, Any]:
        """The numbers ``metrics.json`` keeps for this pass (NaN as ``None``)."""
        tiers = {t.name: t for t in self.report.tiers}
        tokens = {name: _finite(tiers[name].tokens.mean) if name in tiers else None for name in ("all", *TIERS)}
        return {
            "samples": len(self.records),
            "convention": self.convention,
            "skipped_samples": self.skipped_samples,
            "giou": _finite(self.report.overall.giou),
            "ciou": _finite(self.report.overall.ciou),
            "giou_by_tier": {name: _finite(tiers[name].giou) if name in tiers else None for name in TIERS},
            "ciou_by_tier": {name: _finite(tiers[name].ciou) if name in tiers else None for name in TIERS},
            "giou_ci95": bootstrap_interval(self.ious),
            "failed_parses": int(self.report.overall.failed_parses),
            "parsed_answers": self.parsed_answers,
            "parse_rate": self.parsed_answers / len(self.records) if self.records else None,
            "segmenter_calls": self.segmenter_calls,
            "mean_reasoning_tokens": tokens,
            "tier_counts": {name: tiers[name].count if name in tiers else 0 for name in TIERS},
            "budget_adherence": _finite(self.budget_adherence),
            "budget_adherence_by_tier": self.budget_adherence_by_tier,
            "reward_components": self.reward_components,
            "sat": _finite(self.report.sat) if self.report.sat is not None else None,
            "sam_oracle_giou": _finite(self.sam_oracle_giou),
            "sam_oracle_ciou": _finite(self.sam_oracle_ciou),
            "difficulty_source": self.difficulty_source,
            "tiers_valid": self.tiers_valid,
            "difficulty_fallbacks": self.difficulty_fallbacks,
            "fallback_difficulty": self.fallback_difficulty,
            "tiers_note": self.tiers_note,
            "timings": self.timings,
        }


def record_ious(records: Sequence[dict[str, Any]]) -> list[float | None]:
    """Per record, the IoU its pass's gIoU counts (``None`` where the convention skipped the sample); a record
    written before conventions existed (no ``"iou"``) gives :func:`~.report.record_iou`."""
    return [(r["iou"] if "iou" in r else record_iou(r)) if r.get("counted", True) else None for r in records]


def paired_ious(after: Sequence[dict[str, Any]], before: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """The IoUs of the samples counted in both passes (same samples, same order), for
    :func:`paired_difference_interval` (``seg_zero`` may skip a sample in one pass and not in the other)."""
    if len(after) != len(before):
        raise ValueError(f"paired_ious: expected records of the same samples, got {len(after)} and {len(before)}")
    pairs = [(a, b) for a, b in zip(record_ious(after), record_ious(before)) if a is not None and b is not None]
    return np.asarray([a for a, _ in pairs], dtype=np.float64), np.asarray([b for _, b in pairs], dtype=np.float64)


def bootstrap_interval(
    values: Sequence[float] | np.ndarray, *, level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> list[float] | None:
    """Percentile bootstrap interval of the mean of ``values`` (samples resampled with replacement); ``None``
    for fewer than two values. Written here because the example's dependencies have no SciPy (whose
    ``scipy.stats.bootstrap`` does the same); seeded, so a run's interval is reproducible.

    >>> bootstrap_interval([0.0, 1.0] * 50)[0] < 0.5 < bootstrap_interval([0.0, 1.0] * 50)[1]
    True
    """
    data = np.asarray(values, dtype=np.float64)
    if data.size < 2:
        return None
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    return [float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))]


def paired_difference_interval(
    after: Sequence[float] | np.ndarray,
    before: Sequence[float] | np.ndarray,
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> list[float] | None:
    """Bootstrap interval of ``mean(after) - mean(before)`` over the same samples (paired: one resample of the
    sample indices for both); ``None`` for fewer than two samples."""
    a, b = np.asarray(after, dtype=np.float64), np.asarray(before, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_difference_interval: expected equal shapes, got {a.shape} and {b.shape}")
    return bootstrap_interval(a - b, level=level, resamples=resamples, seed=seed)


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


class _FirstTokenClock:
    """A stopping criterion that never stops; it notes when it is first called, i.e. when the first new token
    exists, which separates prefill from decode in ``generate`` (transformers calls it after every step)."""

    def __init__(self) -> None:
        self.first: float | None = None

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        if self.first is None:
            self.first = time.perf_counter()
        torch = import_optional("torch", extra="example", purpose="Evaluation")
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def _completion_ends(generated: Any, eos_ids: set[int]) -> list[int]:
    """Per row of generated ids, the number of real tokens: up to and including the first EOS (padding after)."""
    return [next((j + 1 for j, t in enumerate(row) if t in eos_ids), len(row)) for row in generated.tolist()]


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every id that ends a completion: the generation config's (Qwen2.5-VL lists two) and the tokenizer's."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = set(configured if isinstance(configured, (list, tuple)) else [configured])
    ids.add(tokenizer.eos_token_id)
    return {int(i) for i in ids if i is not None}


def _uncertainty(logits: Sequence[Any], ends: Sequence[int], measure: Literal["margin", "entropy"]) -> np.ndarray:
    """Per completion, the mean per-token uncertainty of the greedy answer (``1 - (p1 - p2)`` or ``H / ln V``)
    over its generated tokens, from the raw decoding logits (``output_logits``, before any logits processor)."""
    from adaptive_length_reward.uncertainty import sequence_uncertainty

    torch = import_optional("torch", extra="example", purpose="Evaluation")
    stacked = torch.stack([step.float() for step in logits], dim=1)  # [B, T, V]
    positions = torch.arange(stacked.shape[1], device=stacked.device)
    mask = positions[None, :] < torch.tensor(list(ends), device=stacked.device)[:, None]
    return np.asarray(
        sequence_uncertainty(stacked, mask=mask, measure=measure, reduction="mean", temperature=1.0), dtype=np.float64
    )


def _require_masks(samples: Sequence[SegSample], owner: str) -> None:
    missing = [s.id for s in samples if s.mask is None]
    if missing:
        raise ValueError(
            f"{owner}: samples: expected ground-truth masks, got none for {missing[:5]} (box-only data "
            "such as RefCOCOg-9k trains but cannot be scored; pass --eval-data with masks)"
        )


def generate_completions(
    policy: Policy,
    samples: Sequence[SegSample],
    *,
    measure: Literal["margin", "entropy"] = "margin",
    batch_size: int = 8,
    max_new_tokens: int = 1024,
    progress: bool = True,
    desc: str = "generate",
    instruction: str = "",
    logits_processors: Any = None,
) -> tuple[list[str], list[float], dict[str, float]]:
    """Greedy completions, their uncertainty (``measure``: ``"margin"`` or ``"entropy"``) and the prefill /
    decode wall-clock seconds and generated token count.

    ``instruction`` is appended to each question (the +Prompt baseline); ``logits_processors(chunk)``, when given,
    returns the extra logits processors for one batch of samples (e.g. the thinking cap with their budgets)."""
    torch = import_optional("torch", extra="example", purpose="Evaluation")
    tqdm = import_optional("tqdm", extra="example", purpose="Progress bars").tqdm
    model, processor, tokenizer = policy.model, policy.processor, policy.tokenizer
    device = next(model.parameters()).device
    eos_ids = _eos_ids(model, tokenizer)
    timings = {"prefill_s": 0.0, "decode_s": 0.0, "generated_tokens": 0.0}
    completions: list[str] = []
    uncertainty: list[float] = []
    batches = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
    for chunk in tqdm(batches, desc=desc, disable=not progress, leave=False):
        texts = [
            processor.apply_chat_template(
                conversation(s.query, instruction), add_generation_prompt=True, tokenize=False
            )
            for s in chunk
        ]
        inputs = processor(
            text=texts, images=[policy_image(s.image, s.frame) for s in chunk], return_tensors="pt", padding=True
        ).to(device)
        clock = _FirstTokenClock()
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.inference_mode():
            extra = {"logits_processor": logits_processors(chunk)} if logits_processors is not None else {}
            out = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                stopping_criteria=[clock],
                output_logits=True,
                return_dict_in_generate=True,
                **policy.generation_kwargs(),
                **extra,
            )
        if device.type == "cuda":
            torch.cuda.synchronize()
        end = time.perf_counter()
        first = clock.first if clock.first is not None else end
        timings["prefill_s"] += first - start
        timings["decode_s"] += end - first
        new = out.sequences[:, inputs["input_ids"].shape[1] :]
        ends = _completion_ends(new, eos_ids)
        timings["generated_tokens"] += float(sum(ends))
        completions += processor.batch_decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        uncertainty += _uncertainty(out.logits, ends, measure).tolist()
    return completions, uncertainty, timings


def _segment(
    samples: Sequence[SegSample],
    completions: Sequence[str],
    segmenter: Any,
    tiering: EvalDifficulty,
    timings: dict[str, float],
    convention: Convention,
) -> tuple[ConventionIoU, ConventionIoU, list[dict[str, Any]], int]:
    """Parse and rescale each answer under ``convention``, segment it and the ground-truth prompts (the oracle),
    and count intersection and union: (policy metric, oracle metric, records, segmenter calls on answers)."""
    metric, oracle_metric = ConventionIoU(convention), ConventionIoU(convention)
    records: list[dict[str, Any]] = []
    segmenter_calls = 0
    for k, (sample, text) in enumerate(zip(samples, completions)):
        found = parse_prompt(text, convention)
        prompt = (
            None
            if found is None
            else rescale_prompt(found, sample.image.size, frame=sample.frame, convention=convention)
        )
        truth = prepare_ground_truth(np.asarray(sample.mask, dtype=bool), sample.ignore, convention=convention)
        prediction = None
        if prompt is not None:
            start = time.perf_counter()
            prediction = segmenter.predict(sample.image, prompt.bbox, prompt.points)
            timings["sam_s"] += time.perf_counter() - start
            segmenter_calls += 1
        oracle_prompt = rescale_prompt(
            SegmentationPrompt(sample.bbox, sample.points), sample.image.size, frame=sample.frame, convention=convention
        )
        if oracle_prompt is None:
            raise ValueError(
                f"score_completions: sample {sample.id!r}: expected a finite ground-truth box and points, "
                f"got {sample.bbox!r}, {sample.points!r}"
            )
        start = time.perf_counter()  # the same SAM call with the ground-truth prompts: latency and ceiling
        oracle = segmenter.predict(sample.image, oracle_prompt.bbox, oracle_prompt.points)
        timings["sam_oracle_s"] += time.perf_counter() - start
        counted = metric.update(prediction, truth)
        oracle_metric.update(oracle, truth)
        intersection, union = (
            (int(metric.metric.intersections[-1]), int(metric.metric.unions[-1])) if counted else (0, 0)
        )  # skipped: an empty union
        records.append(
            {
                "id": sample.id,
                "difficulty_source": tiering.source,
                "difficulty": None if tiering.fell_back[k] else float(tiering.values[k]),
                "difficulty_fallback": bool(tiering.fell_back[k]),
                "query": sample.query,
                "completion": text,
                "parsed": prediction is not None,
                "intersection": intersection,
                "union": union,
                "counted": counted,
                "iou": float(metric.metric.ious[-1]) if counted else None,
            }
        )
    return metric, oracle_metric, records, segmenter_calls


def score_completions(
    samples: Sequence[SegSample],
    completions: Sequence[str],
    uncertainty: Sequence[float],
    segmenter: Any,
    *,
    tokenizer: Any,
    train_reward: Reward,
    reward_settings: RewardSettings,
    timings: dict[str, float] | None = None,
    difficulty: EvalDifficulty | None = None,
    convention: str = "lisa",
) -> EvalResult:
    """Parse, segment and score given completions (steps 2-4 of the module docstring).

    Args:
        samples: evaluation samples with ground-truth masks, in the completions' order.
        completions: the policy's decoded answers.
        uncertainty: one value per completion (feeds the hard-tier budget).
        segmenter: anything with ``predict(image, box, points) -> bool mask`` (:class:`Segmenter`).
        tokenizer: counts the reasoning tokens and the completions' token ids.
        train_reward: the training reward, evaluated for its components.
        reward_settings: the PixelThink budgets for adherence.
        timings: generation timings to extend (prefill/decode seconds and the generated token count).
        difficulty: the samples' difficulty; default :func:`eval_difficulty` from ``reward_settings.difficulty``.
        convention: ``"lisa"`` (default) or ``"seg_zero"`` (:mod:`adaptive_length_reward.conventions`): how answers
            are parsed and rescaled, which ground-truth pixels count, and whether an empty union is counted.

    Raises:
        ValueError: a sample has no mask, the lengths of the inputs differ, or an unknown ``convention``.
    """
    rule = check_convention(convention, where="score_completions: convention")
    _require_masks(samples, "score_completions")
    if not len(samples) == len(completions) == len(uncertainty):
        raise ValueError(
            f"score_completions: expected one completion and one uncertainty per sample, got "
            f"{len(samples)} samples, {len(completions)} completions, {len(uncertainty)} values"
        )
    tiering = difficulty if difficulty is not None else eval_difficulty(samples, reward_settings)
    if tiering.values.shape != (len(samples),):
        raise ValueError(
            f"score_completions: difficulty: expected one value per sample ({len(samples)}), got {tiering.values.shape}"
        )
    timings = {"prefill_s": 0.0, "decode_s": 0.0, "generated_tokens": 0.0, **(timings or {})}
    timings.update({"sam_s": 0.0, "sam_oracle_s": 0.0, "reward_s": 0.0})
    metric, oracle_metric, records, segmenter_calls = _segment(samples, completions, segmenter, tiering, timings, rule)
    values = tiering.values
    batch = RewardBatch.from_completions(
        completions,
        difficulty=values,
        uncertainty=np.asarray(uncertainty),
        ground_truth=[s.solution for s in samples],
        group_ids=[s.id for s in samples],
        id=[s.id for s in samples],
        query=[s.query for s in samples],
        mask_area_ratio=[float(np.asarray(s.mask).mean()) for s in samples],
        token_ids=[tokenizer(t, add_special_tokens=False)["input_ids"] for t in completions],
    )
    start = time.perf_counter()
    trained = train_reward.evaluate(batch)
    timings["reward_s"] = time.perf_counter() - start
    reference = reference_penalty(reward_settings, tokenizer).evaluate(batch)
    tokens = PixelThinkReasoningTokens(tokenizer)(batch).astype(np.float64)
    tiers = difficulty_tiers(values, policy=budget_policy(reward_settings))
    lengths, budgets = reference.columns["length"], reference.columns["budget"]
    for i, record in enumerate(records):
        record.update(
            {
                "tier": str(tiers[i]),
                "reasoning_tokens": int(tokens[i]),
                "length": float(lengths[i]),
                "budget": _finite(float(budgets[i])),
                "uncertainty": float(uncertainty[i]),
                "reward": float(trained.rewards[i]),
                "components": {k: float(v[i]) for k, v in trained.components.items()},
            }
        )
    counted = metric.counted  # seg_zero skips empty unions: its output has no record of them
    report = SegmentationReport.build(
        metric.metric,
        reasoning_tokens=tokens[counted],
        difficulty=values[counted],
        budgets=budgets[counted],
        lengths=lengths[counted],  # the budgets' own unit
        tier_policy=budget_policy(reward_settings),
    )
    by_tier: dict[str, float | None] = {}
    for name in TIERS:
        chosen = tiers == name
        by_tier[name] = budget_adherence(lengths[chosen], budgets[chosen]) if chosen.any() else None
    n = max(1, len(samples))
    timings.update(
        {
            "samples": float(len(samples)),
            "prefill_ms_per_sample": 1000 * timings["prefill_s"] / n,
            "decode_ms_per_sample": 1000 * timings["decode_s"] / n,
            "sam_ms_per_sample": 1000 * timings["sam_s"] / n,
            "sam_ms_per_call": 1000
            * (timings["sam_s"] + timings["sam_oracle_s"])
            / (n + sum(r["parsed"] for r in records)),
            "decode_tokens_per_s": timings["generated_tokens"] / timings["decode_s"] if timings["decode_s"] else 0.0,
        }
    )
    components = {
        "reward": float(np.mean(trained.rewards)) if len(samples) else math.nan,
        **{k: float(np.mean(v)) for k, v in trained.components.items()},
    }
    notes = [
        convention_note(rule),
        "sam_oracle_giou: SAM prompted with the ground-truth box and points (the ceiling the policy's "
        "prompts can reach; also times SAM on every sample)",
    ]
    if metric.skipped:
        notes.insert(
            1,
            f"{metric.skipped} of {len(samples)} samples skipped (empty union, convention {rule!r}): "
            "not in gIoU, cIoU, tier counts or reasoning tokens",
        )
    if tiering.note is not None:
        notes.insert(0, f"tiers not valid: {tiering.note}")
    return EvalResult(
        records=records,
        report=report,
        timings=timings,
        reward_components=components,
        budget_adherence=budget_adherence(lengths, budgets),
        budget_adherence_by_tier=by_tier,
        sam_oracle_giou=oracle_metric.giou,
        sam_oracle_ciou=oracle_metric.ciou,
        notes=notes,
        difficulty_source=tiering.source,
        difficulty_fallbacks=int(tiering.fell_back.sum()),
        fallback_difficulty=tiering.fallback,
        tiers_note=tiering.note,
        segmenter_calls=segmenter_calls,
        convention=rule,
        skipped_samples=metric.skipped,
    )


def evaluate(
    policy: Policy,
    segmenter: Segmenter,
    samples: Sequence[SegSample],
    *,
    train_reward: Reward,
    reward_settings: RewardSettings,
    batch_size: int = 8,
    max_new_tokens: int = 1024,
    progress: bool = True,
    desc: str = "evaluate",
    convention: str = "lisa",
    instruction: str = "",
    logits_processors: Any = None,
) -> EvalResult:
    """Greedy-decode, parse, segment and score ``samples`` (which need masks); see the module docstring.

    Args:
        policy: the policy and its processor.
        segmenter: SAM or SAM2.
        samples: evaluation samples with ground-truth masks.
        train_reward: the training reward, evaluated on the greedy completions for its components.
        reward_settings: the PixelThink budgets for adherence and the uncertainty measure.
        batch_size: prompts per ``generate`` call.
        max_new_tokens: decoding limit (Seg-Zero: 1024).
        convention: ``"lisa"`` (default) or ``"seg_zero"``, Seg-Zero's evaluation rules (see
            :func:`score_completions`); checked before decoding.
        instruction: text appended to every question (the +Prompt baseline's concise instruction).
        logits_processors: ``f(samples of one batch) -> list of logits processors`` added to greedy decoding
            (the inference-time thinking cap).

    Raises:
        ValueError: a sample has no mask (box-only data such as RefCOCOg-9k cannot be scored with gIoU), or an
            unknown ``convention``.
    """
    check_convention(convention, where="evaluate: convention")
    _require_masks(samples, "evaluate")
    measure: Literal["margin", "entropy"] = "entropy" if reward_settings.uncertainty == "entropy" else "margin"
    completions, uncertainty, timings = generate_completions(
        policy,
        samples,
        measure=measure,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        progress=progress,
        desc=desc,
        instruction=instruction,
        logits_processors=logits_processors,
    )
    result = score_completions(
        samples,
        completions,
        uncertainty,
        segmenter,
        tokenizer=policy.tokenizer,
        train_reward=train_reward,
        reward_settings=reward_settings,
        timings=timings,
        convention=convention,
    )
    result.notes.insert(0, f"uncertainty at evaluation: {measure} of the greedy answer's decoding logits")
    return result
