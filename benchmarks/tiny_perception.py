"""Why the worked example's tiny Qwen2.5-VL does not learn where the target is: seven probes, side by side.

Each probe trains the example's tiny random-weight Qwen2.5-VL (``pixelthink.models.build_tiny_policy``) on one
question about a single medium square drawn at a random place (112 x 112 pixels = 16 image tokens; the answer is
one token) and reports held-out accuracy:

1. ``vision_alone``: the vision tower with a linear head on its max-pooled tokens, colour (6 classes);
2. ``language_alone``: the language model, the colour as one text token among 16 filler tokens;
3. ``end_to_end``: the whole model, colour, everything trained together (the warm start's set-up);
4. ``prestage_colour``: the vision tower first trained alone (probe 1), then frozen; the language model learns;
5. ``prestage_position``: as 4, but the question is which quarter of the image (left to right) the square is in,
   on a background whose tint encodes the position, after a pre-stage that taught every image token its own row and
   column (and the colour under it);
6. ``prestage_select``: as 5 with 2-4 squares of different colours; the question names one ("the red shape") and
   the answer is its quarter: the referring step of the real task;
7. ``prestage_select_cells``: as 6 made as easy as we could: the squares sit at the centres of the 4 x 4 cells of
   the image-token grid (one per cell), the position tint covers the whole image (the squares too, so every token's
   own pixels say where it is), and the answer is the target's cell (16 classes), after ``--select-steps``
   language-model steps.

Writes ``benchmarks/results/tiny_perception.json`` and prints a table. CPU, one thread, about 7 minutes::

    python benchmarks/tiny_perception.py [--steps 200]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from pixelthink.models import build_tiny_policy  # noqa: E402
from pixelthink.prompts import QUESTION_TEMPLATE  # noqa: E402
from pixelthink.scenes import COLOURS, SIZES, SceneGenerator, SceneObject  # noqa: E402
from pixelthink.training import policy_image  # noqa: E402

FRAME, TRAIN, TEST, BATCH = 840, 500, 100, 16


def _scenes(task: str, tinted: bool, seed: int = 0) -> dict[str, Any]:
    """Images, questions, one-token answers and per-token colour labels (6 = background) for ``task``: "colour" or
    "quarter" (one square), "select" (2-4 squares of different colours, the first is the target), "cells" (as
    "select", the squares at the centres of the token grid's cells, the tint over everything, the answer the cell)."""
    if task == "cells":
        return _cell_scenes(seed)
    rng, generator, names = np.random.default_rng(seed), SceneGenerator(seed=seed), list(COLOURS)
    xx, yy = np.meshgrid(np.arange(FRAME), np.arange(FRAME))
    tint = np.stack([235 - 40 * xx / FRAME, 235 - 40 * yy / FRAME, np.full(xx.shape, 230.0)], -1).astype(np.uint8)
    images, answers, colours, token_colours = [], [], [], []
    r = SIZES["medium"] * FRAME
    questions = []
    for _ in range(TRAIN + TEST):
        n = int(rng.integers(2, 5)) if task == "select" else 1
        chosen = rng.choice(len(names), size=n, replace=False)
        objects = []
        while len(objects) < n:
            cx, cy = (float(v) for v in rng.uniform(r + 2, FRAME - r - 2, size=2))
            if all(max(abs(o.cx - cx), abs(o.cy - cy)) > 2 * r + 20 for o in objects):
                objects.append(SceneObject("square", names[int(chosen[len(objects)])], "medium", cx, cy, r))
        image, masks = generator._draw(objects)
        everything = np.any(masks, axis=0)
        if tinted:
            pixels = np.array(image)
            pixels[~everything] = tint[~everything]
            image = Image.fromarray(pixels)
        images.append(policy_image(image, FRAME))
        target = objects[0]
        colour = int(chosen[0])
        answers.append(colour if task == "colour" else int(target.cx // (FRAME / 4)))
        colours.append(colour)
        questions.append(f"the {names[colour]} shape" if task == "select" else task)
        per_token = np.full(16, len(names))
        for k, m in enumerate(masks):
            cover = m.reshape(4, FRAME // 4, 4, FRAME // 4).mean((1, 3)).reshape(16)
            per_token[cover > 0.05] = int(chosen[k])
        token_colours.append(per_token)
    return {
        "images": images,
        "answers": answers,
        "colours": colours,
        "token_colours": np.array(token_colours),
        "questions": questions,
    }


def _cell_scenes(seed: int) -> dict[str, Any]:
    """Probe 7's scenes: 2-4 squares of different colours at the centres of distinct cells of the 4 x 4 token grid,
    the whole image shifted by a position gradient (red falls 60 levels left to right, green top to bottom)."""
    rng, generator, names = np.random.default_rng(seed), SceneGenerator(seed=seed), list(COLOURS)
    xx, yy = np.meshgrid(np.arange(FRAME), np.arange(FRAME))
    shift = np.stack([-60 * xx / FRAME, -60 * yy / FRAME, np.zeros(xx.shape)], -1)
    cell, r = FRAME / 4, SIZES["medium"] * FRAME
    out: dict[str, list[Any]] = {k: [] for k in ("images", "answers", "colours", "token_colours", "questions")}
    for _ in range(TRAIN + TEST):
        n = int(rng.integers(2, 5))
        chosen = rng.choice(len(names), size=n, replace=False)
        cells = rng.choice(16, size=n, replace=False)
        objects = [
            SceneObject("square", names[int(c)], "medium", (k % 4 + 0.5) * cell, (k // 4 + 0.5) * cell, r)
            for c, k in zip(chosen, cells)
        ]
        image, _ = generator._draw(objects)
        pixels = np.clip(np.asarray(image, dtype=float) + shift, 0, 255).astype(np.uint8)
        out["images"].append(policy_image(Image.fromarray(pixels), FRAME))
        out["answers"].append(int(cells[0]))
        out["colours"].append(int(chosen[0]))
        out["questions"].append(f"the {names[int(chosen[0])]} shape")
        per_token = np.full(16, len(names))
        per_token[cells] = chosen
        out["token_colours"].append(per_token)
    return {**out, "token_colours": np.array(out["token_colours"])}


class Probe:
    """One tiny policy and its encoded scenes."""

    def __init__(self, task: str, tinted: bool = False) -> None:
        torch.manual_seed(0)
        policy = build_tiny_policy(QUESTION_TEMPLATE, seed=0)
        self.model, self.processor = policy.model, policy.processor
        self.processor.image_processor.min_pixels = self.processor.image_processor.max_pixels = 28 * 28 * 16
        data = _scenes(task, tinted)
        self.rng = np.random.default_rng(1)
        prompts = [
            self.processor.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}],
                add_generation_prompt=True,
                tokenize=False,
            )
            for q in data["questions"]
        ]
        self.encoded = self.processor(text=prompts, images=data["images"], return_tensors="pt", padding=True)
        self.per_image = self.encoded["pixel_values"].shape[0] // len(data["images"])
        ids = self.processor.tokenizer.convert_tokens_to_ids
        self.targets = torch.tensor([ids(str(a)) for a in data["answers"]])
        self.answers = torch.tensor(data["answers"])
        self.answers_colour = torch.tensor(data["colours"])
        self.token_colours = torch.tensor(data["token_colours"])

    def pixels(self, rows: list[int]) -> torch.Tensor:
        return torch.cat([self.encoded["pixel_values"][i * self.per_image : (i + 1) * self.per_image] for i in rows])

    def vision(self, rows: list[int]) -> torch.Tensor:
        out = self.model.model.visual(self.pixels(rows), grid_thw=self.encoded["image_grid_thw"][rows])
        out = out.pooler_output if hasattr(out, "pooler_output") else out
        return out.view(len(rows), -1, out.shape[-1])

    def batch(self, rows: list[int]) -> dict[str, torch.Tensor]:
        keys = ("input_ids", "attention_mask", "image_grid_thw", "mm_token_type_ids")
        return {**{k: self.encoded[k][rows] for k in keys}, "pixel_values": self.pixels(rows)}

    def draw(self) -> list[int]:
        return [int(i) for i in self.rng.integers(0, TRAIN, size=BATCH)]

    def prestage(self, steps: int, positions: bool) -> dict[str, float]:
        """Train the vision tower alone with temporary heads: the image's colour from the max-pooled tokens (as
        probe 1) and, with ``positions``, every token's own row and column and the colour under it; returns the last
        step's loss and (with ``positions``) its per-token part (colour + row + column: what each token can say of
        itself; the pooled colour names the target only where the image holds one shape)."""
        width = self.model.config.text_config.hidden_size
        head = torch.nn.Linear(width, 6 + 7 + 8)
        optimizer = torch.optim.AdamW([*self.model.model.visual.parameters(), *head.parameters()], lr=3e-3)
        grid = torch.arange(16).repeat(BATCH)
        loss = per_token = torch.tensor(0.0)
        for _ in range(steps):
            rows = self.draw()
            tokens = self.vision(rows)
            loss = torch.nn.functional.cross_entropy(head(tokens.max(1).values)[:, :6], self.answers_colour[rows])
            if positions:
                logits = head(tokens).reshape(-1, 21)
                per_token = torch.nn.functional.cross_entropy(logits[:, 6:13], self.token_colours[rows].reshape(-1))
                per_token = per_token + torch.nn.functional.cross_entropy(logits[:, 13:17], grid // 4)
                per_token = per_token + torch.nn.functional.cross_entropy(logits[:, 17:], grid % 4)
                loss = loss + per_token
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        out = {"prestage_loss": float(loss.detach())}
        return {**out, "prestage_per_token_loss": float(per_token.detach())} if positions else out

    def train_language(self, steps: int, *, freeze_vision: bool, lr: float = 3e-3) -> float:
        """Train the whole model (or all but the vision tower) on the one-token answer; held-out accuracy."""
        params = [p for n, p in self.model.named_parameters() if not (freeze_vision and "visual" in n)]
        optimizer = torch.optim.AdamW(params, lr=lr)
        for _ in range(steps):
            rows = self.draw()
            loss = torch.nn.functional.cross_entropy(self.model(**self.batch(rows)).logits[:, -1], self.targets[rows])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad()
        with torch.no_grad():
            held_out = list(range(TRAIN, TRAIN + TEST))
            predicted = self.model(**self.batch(held_out)).logits[:, -1].argmax(-1)
        return float((predicted == self.targets[held_out]).float().mean())

    def train_vision_head(self, steps: int) -> float:
        """Probe 1: a linear head on the max-pooled vision tokens; held-out accuracy."""
        head = torch.nn.Linear(self.model.config.text_config.hidden_size, 6)
        optimizer = torch.optim.AdamW([*self.model.model.visual.parameters(), *head.parameters()], lr=3e-3)
        for _ in range(steps):
            rows = self.draw()
            loss = torch.nn.functional.cross_entropy(head(self.vision(rows).max(1).values), self.answers[rows])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        with torch.no_grad():
            held_out = list(range(TRAIN, TRAIN + TEST))
            predicted = head(self.vision(held_out).max(1).values).argmax(-1)
        return float((predicted == self.answers[held_out]).float().mean())


def language_alone(steps: int) -> float:
    """Probe 2: the colour as one text token among 16 filler tokens (no image)."""
    torch.manual_seed(0)
    policy = build_tiny_policy(QUESTION_TEMPLATE, seed=0)
    model, tokenizer = policy.model, policy.processor.tokenizer
    rng, names = np.random.default_rng(0), list(COLOURS)
    answers = rng.integers(0, len(names), size=TRAIN + TEST)
    texts = []
    for answer in answers:
        words = ["x"] * 16
        words[int(rng.integers(16))] = names[answer]
        messages = [{"role": "user", "content": " ".join(words) + " colour"}]
        texts.append(policy.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
    encoded = tokenizer(texts, return_tensors="pt", padding=True)
    targets = torch.tensor([tokenizer.convert_tokens_to_ids(str(a)) for a in answers])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        rows = [int(i) for i in rng.integers(0, TRAIN, size=BATCH)]
        logits = model(input_ids=encoded["input_ids"][rows], attention_mask=encoded["attention_mask"][rows]).logits
        torch.nn.functional.cross_entropy(logits[:, -1], targets[rows]).backward()
        optimizer.step()
        optimizer.zero_grad()
    with torch.no_grad():
        logits = model(input_ids=encoded["input_ids"][TRAIN:], attention_mask=encoded["attention_mask"][TRAIN:]).logits
    return float((logits[:, -1].argmax(-1) == targets[TRAIN:]).float().mean())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="training steps of each probe")
    parser.add_argument("--prestage-steps", type=int, default=400, help="vision pre-stage steps (probes 4-7)")
    parser.add_argument("--select-steps", type=int, default=1200, help="language-model steps of probe 7")
    parser.add_argument(
        "--probes",
        default="vision_alone,language_alone,end_to_end,prestage_colour,prestage_position,prestage_select,"
        "prestage_select_cells",
        help="comma-separated probes to run",
    )
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "tiny_perception.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results: dict[str, Any] = {}

    wanted = set(args.probes.split(","))

    def record(name: str, chance: float, run: Any) -> None:
        if name not in wanted:
            return
        start = time.perf_counter()
        accuracy, extra = run()
        results[name] = {"accuracy": accuracy, "chance": chance, "seconds": time.perf_counter() - start, **extra}
        print(
            f"{name:<18} held-out accuracy {100 * accuracy:5.1f} %  (chance {100 * chance:.0f} %)  "
            f"{results[name]['seconds']:.0f} s",
            flush=True,
        )

    record("vision_alone", 1 / 6, lambda: (Probe("colour").train_vision_head(args.steps), {}))
    record("language_alone", 1 / 6, lambda: (language_alone(args.steps), {}))
    record("end_to_end", 1 / 6, lambda: (Probe("colour").train_language(args.steps, freeze_vision=False), {}))

    def prestaged(task: str, positions: bool) -> tuple[float, dict[str, Any]]:
        probe = Probe(task, tinted=positions)
        losses = probe.prestage(args.prestage_steps, positions)
        return probe.train_language(args.steps, freeze_vision=True), losses

    record("prestage_colour", 1 / 6, lambda: prestaged("colour", False))
    record("prestage_position", 1 / 4, lambda: prestaged("quarter", True))
    record("prestage_select", 1 / 4, lambda: prestaged("select", True))

    def cells() -> tuple[float, dict[str, Any]]:
        probe = Probe("cells", tinted=True)
        losses = probe.prestage(args.prestage_steps, True)
        return probe.train_language(args.select_steps, freeze_vision=True), {**losses, "steps": args.select_steps}

    record("prestage_select_cells", 1 / 16, cells)
    out = {
        "steps": args.steps,
        "prestage_steps": args.prestage_steps,
        "select_steps": args.select_steps,
        "batch": BATCH,
        "train_images": TRAIN,
        "test_images": TEST,
        "image_tokens": 16,
        "torch": torch.__version__,
        "probes": results,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return out


if __name__ == "__main__":
    main()
