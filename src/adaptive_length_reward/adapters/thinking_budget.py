"""An inference-time thinking cap: the training budget policy applied at generation.

[`ThinkingBudgetProcessor`][] is a logits processor for transformers ``generate``. Once a row's reasoning span
(the tokens after the opening tag) reaches that row's budget, it forces the closing tag's tokens one by one, then
stops interfering, so the model writes its answer freely. [`thinking_budgets`][] turns a
[`BudgetPolicy`][] (e.g. PixelThink's
[`TieredBudget`][]) and each sample's difficulty/uncertainty into the per-row
token budgets; [`vllm_sampling_kwargs`][] gives the same budgets as vLLM's own ``thinking_token_budget``.

Counting convention (the library's, [`spans`][] on token ids, as
[`TokenIdCount`][] with ``span="reasoning"`` counts it on the generated ids):
the reasoning tokens are the generated tokens after the first opening tag up to the first closing tag after it
(or, for a row whose prompt left the reasoning open, from the first generated token). With a budget ``B`` a row
keeps at most ``B`` reasoning tokens; the cap then writes the closing tag, so a capped row has exactly ``B``
reasoning tokens followed by the tag's ``len(close_ids)`` tokens, or fewer reasoning tokens when the model had
already begun writing the tag itself (the cap completes it). A float budget ``b`` allows ``floor(b)`` tokens (a
length ``L <= b`` is never penalised); ``inf`` (``NO_PENALTY``) means no cap.

Importing this module loads neither torch nor transformers: the processor only calls methods of the tensors it
is given. See docs/thinking_budget.md.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..batch import RewardBatch
from ..budgets import BudgetPolicy
from ..spans import _find

__all__ = ["ThinkingBudgetProcessor", "tag_ids", "thinking_budgets", "token_caps", "vllm_sampling_kwargs"]

logger = logging.getLogger(__name__)

Cap = int | None
"""A row's reasoning-token cap; ``None`` = no cap."""


def token_caps(budgets: Sequence[Any] | npt.ArrayLike) -> list[Cap]:
    """Budgets (numbers ``>= 0``, ``inf`` or ``None`` for no cap) as per-row token caps: ``floor(b)`` or ``None``.

    >>> token_caps([96, 271.7, float("inf"), None, 0])
    [96, 271, None, None, 0]
    """
    caps: list[Cap] = []
    for i, value in enumerate(np.asarray(budgets, dtype=object).reshape(-1).tolist()):
        if value is None:
            caps.append(None)
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"budgets[{i}]: expected a number >= 0, inf or None, got {value!r}") from None
        if isinstance(value, (bool, np.bool_)) or math.isnan(number) or number < 0:
            raise ValueError(f"budgets[{i}]: expected a number >= 0, inf or None, got {value!r}")
        caps.append(None if math.isinf(number) else math.floor(number))
    return caps


def thinking_budgets(
    policy: BudgetPolicy,
    *,
    difficulty: Sequence[float] | npt.ArrayLike | None = None,
    uncertainty: Sequence[float] | npt.ArrayLike | None = None,
    **context: Any,
) -> list[Cap]:
    """Per-row token caps from a training budget policy: the policy's budget for each sample's context.

    The same [`BudgetPolicy`][] object that shaped the training reward
    (e.g. ``TieredBudget()``: 96 for D < 3.5, none for 3.5 <= D < 5, 256 + 25 U for D >= 5) gets a batch of
    empty completions with the given context columns (``difficulty``, ``uncertainty``, any other column the
    policy requires as a keyword); its budgets go through [`token_caps`][]. Missing context raises as it does
    in training (the policy's ``missing_*`` settings apply).

    >>> from adaptive_length_reward import TieredBudget
    >>> thinking_budgets(TieredBudget(), difficulty=[2.0, 4.0, 6.0], uncertainty=[0.1, 0.2, 0.4])
    [96, None, 266]

    Args:
        policy: the budget policy that shaped the training reward.
        difficulty: one difficulty per row.
        uncertainty: one uncertainty per row.
        **context: any other column the policy requires, one value per row.

    Returns:
        One cap per row: ``floor(budget)`` tokens, or ``None`` (no cap).

    Raises:
        ValueError: no context column, or columns of different lengths.
    """
    columns = {"difficulty": difficulty, "uncertainty": uncertainty, **context}
    sizes = {name: len(np.asarray(v, dtype=object).reshape(-1)) for name, v in columns.items() if v is not None}
    if not sizes:
        raise ValueError("thinking_budgets: expected at least one context column (difficulty=..., ...), got none")
    if len(set(sizes.values())) != 1:
        raise ValueError(f"thinking_budgets: expected context columns of one length, got lengths {sizes}")
    batch = RewardBatch.from_completions([""] * next(iter(sizes.values())), **columns)
    return token_caps(policy(batch))


def tag_ids(tokenizer: Any, tag: str) -> list[int]:
    """The token ids of ``tag`` as the tokenizer writes it on its own (``add_special_tokens=False``)."""
    ids = [int(i) for i in tokenizer.encode(tag, add_special_tokens=False)]
    if not ids:
        raise ValueError(f"tag {tag!r}: expected the tokenizer to encode it to at least one token, got none")
    return ids


def vllm_sampling_kwargs(budgets: Sequence[Any] | npt.ArrayLike) -> list[dict[str, Any]]:
    """Per-request ``SamplingParams`` keywords for vLLM's own cap: ``{"thinking_token_budget": cap}`` per row.

    vLLM's ``SamplingParams.thinking_token_budget`` (``vllm/sampling_params.py``) is enforced by
    ``vllm/v1/sample/thinking_budget_state.py`` (earlier by ``ThinkingTokenBudgetLogitsProcessor`` in
    ``vllm/v1/sample/logits_processor/builtin.py``) only when the engine has a reasoning configuration
    (``--reasoning-parser`` and/or ``--reasoning-config``, ``vllm/config/reasoning.py``); a row without a cap gets
    no key (vLLM's default ``None`` = no limit). Pass one ``SamplingParams(**base, **kw)`` per prompt to
    ``LLM.generate``. See docs/thinking_budget.md for the versions and the counting differences.

    >>> vllm_sampling_kwargs([96, float("inf"), 266.4])
    [{'thinking_token_budget': 96}, {}, {'thinking_token_budget': 266}]

    Args:
        budgets: one budget per row: a number ``>= 0``, ``inf`` or ``None`` (no cap), e.g. from
            [`thinking_budgets`][].

    Returns:
        One keyword dict per row.

    Raises:
        TypeError: a budget that is not a number, ``inf`` or ``None``.
        ValueError: a negative, NaN or boolean budget.
    """
    return [{} if cap is None else {"thinking_token_budget": cap} for cap in token_caps(budgets)]


def _rfind(haystack: list[int], needle: Sequence[int]) -> int:
    """Last index where ``needle`` occurs in ``haystack``, or -1."""
    m = len(needle)
    for i in range(len(haystack) - m, -1, -1):
        if haystack[i : i + m] == list(needle):
            return i
    return -1


def _forced_token(
    generated: list[int], opened: bool, cap: int, open_ids: list[int], close_ids: list[int], stop_ids: frozenset[int]
) -> tuple[int | None, int]:
    """``(token to force or None, reasoning tokens so far)`` for one row, from its generated ids alone.

    The reasoning span is the library's ([`spans`][], rules 2-4): after the first opening
    tag, else from the start where the prompt left it open; it ends at the first closing tag after it. A closed
    span, a row that has stopped (a stop id generated) or a row not in its reasoning is left alone. Past the cap
    the closing tag is written: continuing the longest proper prefix of it that ends the span and starts within
    the cap (the model's own start of the tag, or the tokens forced so far).
    """
    start = _find(generated, open_ids)
    if start >= 0:
        begin = start + len(open_ids)
    elif opened:
        begin = 0
    else:
        return None, 0
    end = _find(generated, close_ids, begin)
    if end >= 0:
        return None, end - begin
    span = generated[begin:]
    if stop_ids.intersection(span) or len(span) < cap:
        return None, len(span)
    for k in range(len(close_ids) - 1, -1, -1):  # the longest prefix of the tag already written, within the cap
        if len(span) - k <= cap and span[len(span) - k :] == close_ids[:k]:
            return close_ids[k], len(span) - k
    # Past the cap with no tag under way: a forced token was overridden (a later processor, a reordered beam).
    return close_ids[0], len(span)


class ThinkingBudgetProcessor:
    """Closes each row's reasoning at its token budget, then lets the answer follow (transformers ``generate``).

    Pass it as ``model.generate(..., logits_processor=LogitsProcessorList([processor]))``. It implements the
    call protocol of ``transformers.LogitsProcessor`` (``processor(input_ids, scores) -> scores``) without
    subclassing it, so this module imports neither torch nor transformers. At each step, for every row whose
    reasoning span has reached its cap and is not closed, every score but the closing tag's next token is set to
    ``-inf`` (and that token's to 0), which greedy decoding and sampling (temperature, top-k/p, penalties) all
    follow. Rows that close their reasoning themselves before the cap, have no cap, or have stopped (a stop id,
    default the tokenizer's EOS) are untouched: their scores are returned as given.

    Where the opening tag is (``opened_in_prompt``):

    - ``None`` (default): per row, from the prompt: a prompt whose last opening tag comes after its last closing
      tag (a chat template that writes ``<think>`` for the model) starts in the reasoning, and every generated
      token counts from the first one; otherwise the row waits for a generated opening tag.
    - ``True``: every row starts in the reasoning (a template that opens it implicitly, without the tag's ids).
    - ``False``: every row waits for a generated opening tag, whatever the prompt holds.

    A row that never opens its reasoning is never capped (no reasoning span to bound). A generated opening tag
    restarts the count there, as the library's span does (rule 2). Prompt tokens after an opening tag are not
    counted: the library measures completions (vLLM counts them; see docs/thinking_budget.md).

    Rows and budgets: ``budgets`` has one entry per prompt row (left padding is fine: the prompt length is read
    from the first call). With ``num_return_sequences=k`` the batch has ``k`` rows per prompt, in order; a
    ``budgets`` of the prompts' length is then repeated ``k`` times per prompt. The processor keeps its state
    per ``generate`` call: make one per call, or call [`reset`][] before reusing it. Beam search and assisted
    decoding reorder or extend rows between steps. With beam search the cap is applied to each beam as it stands
    (the state is re-derived from the ids at every step), but ``capped`` has one entry per beam row at the time
    of forcing, not per returned sequence: compare [`reasoning_lengths`][] with the caps instead. Assisted
    (speculative) decoding, which rolls rows back, is refused (a call shorter than the last one raises).

    After generation, ``capped`` says per row whether the cap fired and [`reasoning_lengths`][] counts
    each row's reasoning tokens in the output (the library's count on the generated ids). The cap does not extend
    ``max_new_tokens``: leave room for the budget, the closing tag and the answer.

    Args:
        tokenizer: a Hugging Face tokenizer (``encode`` for the tags, ``eos_token_id`` for the default stop ids).
        budgets: one per row: ints, floats (``floor``), ``inf``/``None`` for no cap (see [`token_caps`][],
            [`thinking_budgets`][] for a budget policy).
        open_tag: the opening tag; its ids are ``tokenizer.encode(open_tag, add_special_tokens=False)``.
        close_tag: the closing tag, forced token by token.
        opened_in_prompt: see above.
        stop_ids: ids that end a row (default: the tokenizer's EOS id); a row that generated one is left alone.
    """

    def __init__(
        self,
        tokenizer: Any,
        budgets: Sequence[Any] | npt.ArrayLike,
        *,
        open_tag: str = "<think>",
        close_tag: str = "</think>",
        opened_in_prompt: bool | None = None,
        stop_ids: Sequence[int] | None = None,
    ) -> None:
        self.caps = token_caps(budgets)
        if not self.caps:
            raise ValueError("budgets: expected one budget per row, got none")
        if opened_in_prompt not in (None, True, False):
            raise TypeError(f"opened_in_prompt: expected None, True or False, got {opened_in_prompt!r}")
        self.open_ids, self.close_ids = tag_ids(tokenizer, open_tag), tag_ids(tokenizer, close_tag)
        if stop_ids is None:
            eos = getattr(tokenizer, "eos_token_id", None)
            stop_ids = [] if eos is None else list(eos) if isinstance(eos, (list, tuple)) else [eos]
        self.stop_ids = frozenset(int(i) for i in stop_ids)
        self.opened_in_prompt = opened_in_prompt
        self.reset()

    def reset(self) -> None:
        """Forget the last generation (the prompt length, the per-row records)."""
        self._prompt_length: int | None = None
        self._prompts: Any = None  # the first call's prompt ids (a tensor), to tell this generation from another
        self._length = 0  # the length of the ids of the last call
        self._row_caps: list[Cap] = []
        self._opened: list[bool] = []
        self.capped: npt.NDArray[np.bool_] = np.zeros(0, dtype=bool)
        """Per row: whether the cap forced a token of the closing tag."""

    def _start(self, prompts: list[list[int]]) -> None:
        rows, n = len(prompts), len(self.caps)
        if rows % n:
            raise ValueError(
                f"budgets: expected one per row ({rows} rows) or per prompt (a divisor of {rows}), got {n}"
            )
        self._row_caps = [cap for cap in self.caps for _ in range(rows // n)]
        if self.opened_in_prompt is None:
            self._opened = [_rfind(p, self.open_ids) > _rfind(p, self.close_ids) for p in prompts]
        else:
            self._opened = [self.opened_in_prompt] * rows
        self._prompt_length = len(prompts[0])
        self.capped = np.zeros(rows, dtype=bool)

    def _check_same_generation(self, input_ids: Any) -> None:
        rows, length, prompt = int(input_ids.shape[0]), int(input_ids.shape[1]), self._prompt_length
        assert prompt is not None
        same = rows == len(self._row_caps) and length > self._length and input_ids[:, :prompt].equal(self._prompts)
        if not same:
            raise ValueError(
                f"input_ids: expected the generation this processor started ({len(self._row_caps)} rows, longer "
                f"than {self._length} ids, the same prompts), got {rows} rows of {length} ids; make a new processor "
                "for each generate call, or call reset()"
            )

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        """Force the closing tag's next token in the rows past their cap; return the scores.

        ``scores`` is never modified: a forced row is written into a copy, as transformers' own processors do
        (``generate(output_logits=True)`` keeps the tensor it passes here as the step's raw logits)."""
        if self._prompt_length is None:
            self._start(input_ids.tolist())
            self._prompts = input_ids.clone()
        else:
            self._check_same_generation(input_ids)
        self._length = length = int(input_ids.shape[1])
        prompt = self._prompt_length
        assert prompt is not None
        rows = [row for row, cap in enumerate(self._row_caps) if cap is not None and length - prompt >= cap]
        ids: list[list[int]] = input_ids[rows].tolist() if rows else []
        original = scores
        for row, sequence in zip(rows, ids):
            cap = self._row_caps[row]
            assert cap is not None
            token, _ = _forced_token(
                sequence[prompt:], self._opened[row], cap, self.open_ids, self.close_ids, self.stop_ids
            )
            if token is not None:
                if scores is original:
                    scores = scores.clone()
                scores[row] = float("-inf")
                scores[row, token] = 0.0
                if not self.capped[row]:
                    logger.debug("row %d: reasoning reached its cap of %d tokens; closing it", row, cap)
                self.capped[row] = True
        return scores

    def reasoning_lengths(self, sequences: Any) -> npt.NDArray[np.int64]:
        """Reasoning tokens per row of ``generate``'s output (prompt + generated ids, as the processor saw them):
        the span the cap bounds, counted by the library's rule on the generated ids up to the first stop id (the
        rest is padding); a row that never opened its reasoning has 0. A capped row has at most its cap.

        ``sequences`` has the generation's rows, or (beam search with fewer returned sequences than beams) a
        multiple of the number of budgets, each budget's rows together."""
        if self._prompt_length is None:
            raise ValueError("reasoning_lengths: the processor has not seen a generation yet (call generate first)")
        rows: list[list[int]] = sequences.tolist() if hasattr(sequences, "tolist") else [list(r) for r in sequences]
        n, seen = len(self.caps), len(self._opened)
        if len(rows) == seen:
            opened = self._opened
        elif len(rows) % n == 0:  # each budget's flag (its rows share one prompt), repeated for its returned rows
            opened = [self._opened[(i // (len(rows) // n)) * (seen // n)] for i in range(len(rows))]
        else:
            raise ValueError(
                f"sequences: expected {seen} rows (the generation's) or a multiple of {n} (the "
                f"budgets'), got {len(rows)}"
            )
        counts = []
        for row, row_opened in zip(rows, opened):
            generated = row[self._prompt_length :]
            stop = next((i for i, t in enumerate(generated) if t in self.stop_ids), len(generated))
            counts.append(
                _forced_token(generated[:stop], row_opened, stop + 1, self.open_ids, self.close_ids, frozenset())[1]
            )
        return np.asarray(counts, dtype=np.int64)
