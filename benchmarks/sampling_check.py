"""The sampling-time uncertainty route on one model, for a device check: same draws with and without recording,
statistics against a separate forward pass, time and peak memory side by side.

``sampling_route_check(model, inputs, ...)`` (importable by ``benchmarks/gpu_check.py``):

1. ``model.generate`` and :func:`adaptive_length_reward.uncertainty.generate_with_statistics`, alternated
   ``repeats`` times with the same seed (so both sample the same tokens; checked), timed (CUDA synchronised) with
   the peak CUDA memory of each call;
2. one forward pass over prompt + completion at the sampling temperature and
   :func:`~adaptive_length_reward.uncertainty.token_statistics` on it: max |recorded - recomputed| per statistic
   over every generated token (float32 models should agree to ~1e-5; bf16 models differ by the KV-cache
   rounding, reported, not asserted).

Returns a JSON-ready dict. ``python benchmarks/sampling_check.py`` runs it on a tiny random Qwen2 on CPU
(``--device cuda`` to use a GPU) and prints it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from adaptive_length_reward.uncertainty import (  # noqa: E402
    SAMPLING_STATISTICS,
    generate_with_statistics,
    token_statistics,
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device: torch.device, call: Any) -> tuple[Any, float, float | None]:
    """``(result, seconds, peak CUDA bytes or None)`` of ``call()``."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    start = time.perf_counter()
    result = call()
    _sync(device)
    seconds = time.perf_counter() - start
    peak = float(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    return result, seconds, peak


def sampling_route_check(
    model: Any,
    inputs: dict[str, Any],
    *,
    temperature: float = 1.0,
    max_new_tokens: int = 64,
    repeats: int = 3,
    seed: int = 0,
    **generate_kwargs: Any,
) -> dict[str, Any]:
    """Run the check on ``model`` (any HF causal LM or VLM; ``inputs`` as ``generate`` takes them, on its device)."""
    device = next(model.parameters()).device
    options = dict(
        do_sample=True, temperature=temperature, top_k=0, top_p=1.0, max_new_tokens=max_new_tokens, **generate_kwargs
    )
    plain_s, record_s, plain_peak, record_peak = [], [], [], []
    sequences = stats = None
    same = True
    for _ in range(repeats):
        torch.manual_seed(seed)
        with torch.no_grad():
            reference, seconds, peak = _timed(device, lambda: model.generate(**inputs, **options))
        plain_s.append(seconds)
        plain_peak.append(peak)
        torch.manual_seed(seed)
        with torch.no_grad():
            (sequences, stats), seconds, peak = _timed(
                device, lambda: generate_with_statistics(model, inputs, **options)
            )
        record_s.append(seconds)
        record_peak.append(peak)
        same = same and torch.equal(reference, sequences)
    assert sequences is not None and stats is not None
    width = int(inputs["input_ids"].shape[1])
    attention = torch.cat([inputs["attention_mask"], torch.ones_like(sequences[:, width:])], dim=1)
    extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    with torch.no_grad():
        logits = model(input_ids=sequences, attention_mask=attention, **extra).logits[:, width - 1 : -1]
    lengths = [len(v) for v in stats["margin"]]
    mask = torch.zeros(logits.shape[:2], dtype=torch.bool, device=logits.device)
    for i, n in enumerate(lengths):
        mask[i, :n] = True
    recomputed = token_statistics(
        logits, mask=mask, token_ids=sequences[:, width:], temperature=temperature, stats=SAMPLING_STATISTICS
    )
    max_abs = {}
    for name in SAMPLING_STATISTICS:
        rows = recomputed[name].double().cpu()
        max_abs[name] = max(
            (float((torch.as_tensor(v) - rows[i, : len(v)]).abs().max()) for i, v in enumerate(stats[name]) if len(v)),
            default=0.0,
        )
    median = statistics.median
    return {
        "device": str(device),
        "dtype": str(next(model.parameters()).dtype),
        "batch": int(sequences.shape[0]),
        "tokens": int(sum(lengths)),
        "same_tokens_with_and_without_recording": bool(same),
        "generate_median_s": median(plain_s),
        "generate_with_statistics_median_s": median(record_s),
        "time_ratio": median(record_s) / median(plain_s),
        "generate_peak_bytes": median(plain_peak) if device.type == "cuda" else None,
        "generate_with_statistics_peak_bytes": median(record_peak) if device.type == "cuda" else None,
        "max_abs_diff_vs_forward": max_abs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT / "tests"))
    from adapter_fixtures import build_text_lm, build_tokenizer

    tokenizer = build_tokenizer()
    model = build_text_lm(tokenizer, hidden=256, layers=4, logit_scale=20.0).to(args.device)
    inputs = tokenizer(
        ["Find the red square and output its bounding box.", "Where?"], return_tensors="pt", padding=True
    ).to(args.device)
    print(json.dumps(sampling_route_check(model, dict(inputs), max_new_tokens=args.max_new_tokens), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
