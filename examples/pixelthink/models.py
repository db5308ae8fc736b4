"""The two models of the pipeline: the Qwen2.5-VL policy and the frozen SAM / SAM2 segmenter.

:class:`GrabCutSegmenter` is a third, weightless segmenter (OpenCV GrabCut) that works on a CPU. The models
come from a local checkpoint directory, or, with ``tiny=True``, are built from a small config with random
weights so everything runs offline on a CPU (nothing is ever fetched from a model hub). The tiny policy gets
an in-process byte-level BPE tokenizer trained on the example's own text (prompt, expressions, reasoning,
answers), so its vocabulary covers what it has to write.

Works without torchvision (the CPU wheel of torch 2.13 has none): the policy's processor is assembled from the
PIL image processor and the tokenizer instead of ``AutoProcessor``; SAM2's preprocessing (resize to the model's
square input, ImageNet normalisation, prompt scaling) is done here, as ``Sam2Processor`` does it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from adaptive_length_reward.errors import import_optional

from .scenes import BoolArray, SceneGenerator

__all__ = [
    "ARCHITECTURES",
    "GrabCutSegmenter",
    "Policy",
    "Segmenter",
    "build_random_policy",
    "build_tiny_policy",
    "build_tiny_segmenter",
    "load_policy",
    "load_segmenter",
]

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

#: The answer format's fixed pieces; with the integers 0..999 they are whole tokens of the tiny tokenizer, so a
#: small random model learns the answer format in a few dozen steps (Qwen's tokenizer splits them up).
FORMAT_TOKENS = (
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    '{"bbox": [',
    '], "points_1": [',
    '], "points_2": [',
    "]}",
)

#: ChatML as Qwen2.5-VL writes it (system prompt "You are a helpful assistant." unless one is given), with
#: string content or a list of ``{"type": "image"}`` / ``{"type": "text"}`` parts.
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if loop.first and m['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for part in m['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _transformers() -> Any:
    return import_optional("transformers", extra="example", purpose="The PixelThink example")


def _torch() -> Any:
    return import_optional("torch", extra="example", purpose="The PixelThink example")


@dataclass
class Policy:
    """A policy model with its processor. ``frame`` is the square side images are resized to (Seg-Zero: 840)."""

    model: Any
    processor: Any
    name: str
    tiny: bool
    #: Token ids generation must never produce: the ids a size-true random policy has beyond its small
    #: tokenizer's vocabulary (see :func:`build_random_policy`). Empty for real checkpoints and the tiny policy.
    suppressed_ids: tuple[int, ...] = ()

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    def generation_kwargs(self) -> dict[str, Any]:
        """Extra ``generate``/``GenerationConfig`` settings this policy needs (``{}`` for real checkpoints).

        TRL's GRPOTrainer suppresses the image token itself and lets ``generation_kwargs`` replace its list, so
        the image and video tokens are kept in ours.
        """
        if not self.suppressed_ids:
            return {}
        config = self.model.config
        media = [
            i
            for i in (getattr(config, "image_token_id", None), getattr(config, "video_token_id", None))
            if i is not None
        ]
        return {"suppress_tokens": sorted({*media, *self.suppressed_ids})}


def _offline_processor_class() -> Any:
    transformers = _transformers()

    class OfflineQwenProcessor(transformers.Qwen2_5_VLProcessor):  # type: ignore[misc, name-defined]
        """The stock processor rejects ``video_processor=None`` when torchvision is absent; allow None."""

        def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
            if argument is None:
                return None
            return super().check_argument_for_proper_class(argument_name, argument)

        def save_pretrained(self, save_directory: Any, push_to_hub: bool = False, **kwargs: Any) -> list[str]:
            """Save the tokenizer, the image processor and the chat template (the stock method trips over the
            absent video processor); ``from_pretrained`` of the pieces reloads them."""
            if push_to_hub:
                raise ValueError(
                    "OfflineQwenProcessor.save_pretrained: push_to_hub: expected False (offline), got True"
                )
            directory = Path(save_directory)
            directory.mkdir(parents=True, exist_ok=True)
            files = list(self.tokenizer.save_pretrained(str(directory)))
            files += list(self.image_processor.save_pretrained(str(directory)) or [])
            if self.chat_template:
                (directory / "chat_template.jinja").write_text(self.chat_template, encoding="utf-8")
                files.append(str(directory / "chat_template.jinja"))
            return files

    return OfflineQwenProcessor


def tokenizer_corpus(prompt_template: str, samples: int = 48) -> list[str]:
    """The text the tiny tokenizer is trained on: prompts, expressions, reference reasoning and answers."""
    from .prompts import format_answer, warmup_reasoning

    corpus = [prompt_template, "0 1 2 3 4 5 6 7 8 9 10 100 , . : [ ] { } \" ' < > / ( )"]
    for sample in SceneGenerator(seed=9_999, image_size=840).samples(samples):
        corpus.append(sample.query)
        corpus.append(f"<think> {sample.reasoning_long} </think>{format_answer(sample.bbox, sample.points)}")
        corpus.append(warmup_reasoning(sample.query))
    return corpus


#: Published Qwen2.5-VL architectures (the ``config.json`` of ``Qwen/Qwen2.5-VL-3B-Instruct`` and
#: ``Qwen/Qwen2.5-VL-7B-Instruct``), for size-true runs with random weights where no checkpoint is at hand.
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "qwen2.5-vl-3b": {
        "text": {
            "vocab_size": 151936,
            "hidden_size": 2048,
            "intermediate_size": 11008,
            "num_hidden_layers": 36,
            "num_attention_heads": 16,
            "num_key_value_heads": 2,
            "max_position_embeddings": 128000,
            "rms_norm_eps": 1e-6,
            "mrope_section": [16, 24, 24],
        },
        "vision": {
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": 2048,
            "fullatt_block_indexes": [7, 15, 23, 31],
        },
        "tie_word_embeddings": True,
    },
    "qwen2.5-vl-7b": {
        "text": {
            "vocab_size": 152064,
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "max_position_embeddings": 128000,
            "rms_norm_eps": 1e-6,
            "mrope_section": [16, 24, 24],
        },
        "vision": {
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": 3584,
            "fullatt_block_indexes": [7, 15, 23, 31],
        },
        "tie_word_embeddings": False,
    },
}


def _tiny_processor(prompt_template: str, vocab_size: int) -> Any:
    """The offline processor: a byte-level BPE tokenizer trained in-process on the example's own text, and the
    PIL image processor (small images: 4 to 16 merged patches)."""
    transformers = _transformers()
    tokenizers = import_optional("tokenizers", extra="example", purpose="The tiny policy's tokenizer")
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token=None))
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.Sequence(
        [  # one token per digit, as Qwen's tokenizer
            tokenizers.pre_tokenizers.Digits(individual_digits=True),
            tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    bpe.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(tokenizer_corpus(prompt_template), trainer=trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
        padding_side="left",
    )
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    # plain added tokens (decoding keeps them): the format's fixed pieces and every integer below 1000
    tokenizer.add_tokens([*FORMAT_TOKENS, ", ", *(str(i) for i in range(1000))])
    images = transformers.Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16)
    return _offline_processor_class()(image_processor=images, tokenizer=tokenizer, chat_template=TINY_CHAT_TEMPLATE)


def _qwen_config(tokenizer: Any, text: dict[str, Any], vision: dict[str, Any], *, tie_word_embeddings: bool) -> Any:
    """A ``Qwen2_5_VLConfig`` whose special token ids are the tokenizer's."""
    ids = tokenizer.convert_tokens_to_ids
    text = dict(text)
    mrope_section = text.pop("mrope_section")
    return _transformers().Qwen2_5_VLConfig(
        text_config={
            **text,
            # mrope_section sums to head_dim / 2 (temporal, height, width)
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": mrope_section},
            "bos_token_id": ids("<|endoftext|>"),
            "eos_token_id": ids("<|im_end|>"),
            "pad_token_id": ids("<|endoftext|>"),
        },
        vision_config={
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            **vision,
        },
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=tie_word_embeddings,
    )


def _generation_defaults(model: Any) -> None:
    model.generation_config.pad_token_id = model.config.text_config.pad_token_id
    model.generation_config.eos_token_id = model.config.text_config.eos_token_id


def build_tiny_policy(
    prompt_template: str, *, vocab_size: int = 640, hidden: int = 128, layers: int = 2, seed: int = 0
) -> Policy:
    """A random-weight Qwen2.5-VL (under 1 M parameters) with a BPE tokenizer trained in-process."""
    torch, transformers = _torch(), _transformers()
    processor = _tiny_processor(prompt_template, vocab_size)
    heads = 4
    head_dim = hidden // heads
    config = _qwen_config(
        processor.tokenizer,
        {
            "vocab_size": len(processor.tokenizer),
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "mrope_section": [head_dim // 8, head_dim * 3 // 16, head_dim * 3 // 16],
        },
        {
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": hidden,
            "fullatt_block_indexes": [1],
        },
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = transformers.Qwen2_5_VLForConditionalGeneration(config)
    _generation_defaults(model)
    return Policy(model=model, processor=processor, name="tiny-qwen2.5-vl (random weights)", tiny=True)


def build_random_policy(
    prompt_template: str,
    architecture: str,
    *,
    layers: int | None = None,
    dtype: str = "auto",
    device: str = "cpu",
    seed: int = 0,
) -> Policy:
    """A published Qwen2.5-VL architecture (:data:`ARCHITECTURES`) with random weights: real sizes, no checkpoint.

    For measuring step time, memory and the cost of the reward and uncertainty passes at a real model size
    where no checkpoint can be fetched (it writes nonsense). The model keeps the architecture's full vocabulary
    (so logits, and the uncertainty pass over them, have their real width ``V``); the tokenizer is the tiny
    policy's, so the ids it does not know are in :attr:`Policy.suppressed_ids` and generation never samples them.

    Args:
        prompt_template: the question template (the tokenizer is trained on it).
        architecture: a key of :data:`ARCHITECTURES`, e.g. ``"qwen2.5-vl-3b"``.
        layers: decoder layers (default: the architecture's); fewer for a quick check of the code path.
        dtype: ``"bfloat16"``, ``"float32"`` or ``"auto"`` (bfloat16 on CUDA, float32 elsewhere).
        device: where the weights are created (``"meta"`` builds no storage: for counting parameters).
        seed: weight initialisation seed.
    """
    torch, transformers = _torch(), _transformers()
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"build_random_policy: architecture: expected one of {sorted(ARCHITECTURES)}, got {architecture!r}"
        )
    spec = ARCHITECTURES[architecture]
    text = dict(spec["text"])
    if layers is not None:
        if layers < 1:
            raise ValueError(f"build_random_policy: layers: expected an int >= 1, got {layers}")
        text["num_hidden_layers"] = layers
    processor = _tiny_processor(prompt_template, 640)
    known = len(processor.tokenizer)
    if known > text["vocab_size"]:
        raise ValueError(
            f"build_random_policy: the tokenizer has {known} ids, more than the architecture's "
            f"vocabulary of {text['vocab_size']}"
        )
    config = _qwen_config(processor.tokenizer, text, spec["vision"], tie_word_embeddings=spec["tie_word_embeddings"])
    if dtype == "auto":
        dtype = "bfloat16" if str(device).startswith("cuda") else "float32"
    torch.manual_seed(seed)
    with torch.device(device):
        model = transformers.Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=getattr(torch, dtype))
    _generation_defaults(model)
    suffix = "" if layers is None else f", {layers} decoder layer{'s' if layers > 1 else ''}"
    return Policy(
        model=model,
        processor=processor,
        name=f"{architecture} (random weights{suffix})",
        tiny=False,
        suppressed_ids=tuple(range(known, text["vocab_size"])),
    )


def _chat_template(path: Path, tokenizer: Any) -> str | None:
    for name in ("chat_template.jinja", "chat_template.json"):
        candidate = path / name
        if candidate.is_file():
            text = candidate.read_text(encoding="utf-8")
            return str(json.loads(text)["chat_template"]) if name.endswith(".json") else text
    template = getattr(tokenizer, "chat_template", None)
    return template if isinstance(template, str) else None


def load_policy(
    path: str | Path, *, dtype: str = "auto", device: str = "cpu", attn_implementation: str | None = None
) -> Policy:
    """Qwen2.5-VL from a local checkpoint directory (e.g. a downloaded ``Qwen2.5-VL-7B-Instruct``).

    The processor is assembled from the checkpoint's image processor (the PIL one), tokenizer and chat
    template, which works with or without torchvision.

    Args:
        path: the checkpoint directory.
        dtype: ``"bfloat16"``, ``"float32"`` or ``"auto"`` (bfloat16 on CUDA, float32 elsewhere).
        device: where to put the model.
        attn_implementation: e.g. ``"flash_attention_2"`` or ``"sdpa"``; default: the library's choice.

    Raises:
        FileNotFoundError: ``path`` is not a directory with a ``config.json``.
    """
    torch, transformers = _torch(), _transformers()
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"load_policy: path: expected a checkpoint directory with config.json, got {str(path)!r}"
        )
    if dtype == "auto":
        dtype = "bfloat16" if str(device).startswith("cuda") else "float32"
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    model = transformers.Qwen2_5_VLForConditionalGeneration.from_pretrained(str(path), **kwargs).to(device)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), padding_side="left")
    images = transformers.Qwen2VLImageProcessorPil.from_pretrained(str(path))
    processor = _offline_processor_class()(
        image_processor=images, tokenizer=tokenizer, chat_template=_chat_template(path, tokenizer)
    )
    return Policy(model=model, processor=processor, name=path.name, tiny=False)


# ------------------------------------------------------------------------------------------------------------
# Segmenter
# ------------------------------------------------------------------------------------------------------------


class Segmenter:
    """SAM or SAM2 prompted with one box and two positive points; returns the best of the multimask outputs.

    PixelThink / Seg-Zero evaluation (``evaluation_scripts/evaluation.py``): ``predict(point_coords=points,
    point_labels=[1, 1], box=bbox)`` and keep the mask with the highest predicted IoU.

    Args:
        model: a ``SamModel`` or ``Sam2Model``.
        processor: a ``SamProcessor`` for SAM; ``None`` for SAM2 (preprocessing done here).
        name: for reports.
    """

    def __init__(self, model: Any, processor: Any | None, *, name: str) -> None:
        self.model, self.processor, self.name = model, processor, name
        self.kind = "sam2" if type(model).__name__.startswith("Sam2") else "sam"
        if self.kind == "sam" and processor is None:
            raise ValueError("Segmenter: processor: expected a SamProcessor for a SamModel, got None")

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def _sam2_inputs(self, image: Image.Image, box: Any, points: Any) -> dict[str, Any]:
        """What ``Sam2Processor`` produces, without torchvision: square resize, ImageNet normalisation, prompts
        scaled by ``side / W`` and ``side / H`` (transformers ``models/sam2/image_processing_sam2.py``)."""
        torch = _torch()
        side = int(self.model.config.vision_config.backbone_config.image_size[0])
        w, h = image.size
        pixels = np.asarray(image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR), dtype=np.float32)
        pixels = (pixels / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
        scale = torch.tensor([side / w, side / h], dtype=torch.float32)
        dtype = next(self.model.parameters()).dtype
        return {
            "pixel_values": torch.tensor(pixels, dtype=torch.float32).permute(2, 0, 1)[None].to(self.device, dtype),
            "input_boxes": (torch.tensor(box, dtype=torch.float32).view(2, 2) * scale).view(1, 1, 4).to(self.device),
            "input_points": (torch.tensor(points, dtype=torch.float32) * scale).view(1, 1, -1, 2).to(self.device),
            "input_labels": torch.ones(1, 1, len(points), dtype=torch.long, device=self.device),
        }

    def predict(
        self,
        image: Image.Image,
        box: tuple[float, float, float, float],
        points: tuple[tuple[float, float], tuple[float, float]],
    ) -> BoolArray:
        """The mask (``H x W`` of ``image``) for a box ``(x1, y1, x2, y2)`` and two positive points, in pixels."""
        torch = _torch()
        w, h = image.size
        with torch.inference_mode():
            if self.kind == "sam2":
                out = self.model(**self._sam2_inputs(image, box, points), multimask_output=True)
                scores = out.iou_scores[0, 0].float()
                best = int(torch.argmax(scores))
                low = out.pred_masks[:, 0, best : best + 1].float()
                mask = torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)[0, 0]
                return np.asarray(mask.cpu() > 0)
            assert self.processor is not None  # checked in __init__ for SAM
            inputs = self.processor(
                images=image,
                input_boxes=[[list(box)]],
                input_points=[[list(map(list, points))]],
                input_labels=[[[1] * len(points)]],
                return_tensors="pt",
            ).to(self.device)
            dtype = next(self.model.parameters()).dtype
            inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
            out = self.model(
                **{k: v for k, v in inputs.items() if k not in ("original_sizes", "reshaped_input_sizes")},
                multimask_output=True,
            )
            best = int(torch.argmax(out.iou_scores[0, 0].float()))
            masks = self.processor.post_process_masks(
                out.pred_masks.float().cpu(), inputs["original_sizes"].cpu(), inputs["reshaped_input_sizes"].cpu()
            )[0]
            return np.asarray(masks[0, best])


def build_tiny_segmenter(kind: str = "sam", *, side: int = 128, seed: int = 0) -> Segmenter:
    """A random-weight SAM (stock processor) or SAM2 (about 0.1 M parameters) with a ``side`` x ``side`` input."""
    torch, transformers = _torch(), _transformers()
    if kind not in ("sam", "sam2"):
        raise ValueError(f"build_tiny_segmenter: kind: expected 'sam' or 'sam2', got {kind!r}")
    torch.manual_seed(seed)
    if kind == "sam":
        config = transformers.SamConfig(
            vision_config=transformers.SamVisionConfig(
                hidden_size=32,
                output_channels=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                image_size=side,
                patch_size=16,
                window_size=4,
                global_attn_indexes=[1],
                num_pos_feats=16,
                mlp_dim=64,
            ),
            prompt_encoder_config=transformers.SamPromptEncoderConfig(hidden_size=32, image_size=side, patch_size=16),
            mask_decoder_config=transformers.SamMaskDecoderConfig(
                hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32
            ),
        )
        images = transformers.SamImageProcessorPil(
            size={"longest_edge": side},
            pad_size={"height": side, "width": side},
            mask_size={"longest_edge": side // 4},
            mask_pad_size={"height": side // 4, "width": side // 4},
        )
        return Segmenter(
            transformers.SamModel(config).eval(),
            transformers.SamProcessor(image_processor=images),
            name="tiny-sam (random weights)",
        )
    emb = [8, 16, 32, 64]
    config = transformers.Sam2Config(
        vision_config={
            # a global-attention block must not open a query-pool stage
            "backbone_config": {
                "model_type": "sam2_hiera_det_model",
                "hidden_size": emb[0],
                "num_attention_heads": 1,
                "image_size": [side, side],
                "blocks_per_stage": [1, 1, 2, 1],
                "embed_dim_per_stage": emb,
                "num_attention_heads_per_stage": [1, 1, 1, 1],
                "window_size_per_stage": [4, 4, 4, 2],
                "global_attention_blocks": [3],
                "window_positional_embedding_background_size": [4, 4],
            },
            "backbone_channel_list": emb[::-1],
            "backbone_feature_sizes": [[side // 4] * 2, [side // 8] * 2, [side // 16] * 2],
            "fpn_hidden_size": 32,
        },
        prompt_encoder_config={"hidden_size": 32, "image_size": side, "patch_size": 16},
        mask_decoder_config={"hidden_size": 32, "mlp_dim": 64, "num_attention_heads": 2, "iou_head_hidden_dim": 32},
    )
    return Segmenter(transformers.Sam2Model(config).eval(), None, name="tiny-sam2 (random weights)")


def load_segmenter(path: str | Path, *, device: str = "cpu", dtype: str = "auto") -> Segmenter:
    """SAM (``SamModel``) or SAM2 (``Sam2Model``, e.g. ``facebook/sam2-hiera-large`` in transformers format) from a
    local directory; the kind is read from its ``config.json`` (``model_type`` ``sam`` or ``sam2``)."""
    torch, transformers = _torch(), _transformers()
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"load_segmenter: path: expected a directory with config.json, got {str(path)!r}")
    model_type = json.loads(config_file.read_text())["model_type"]
    if dtype == "auto":
        dtype = "bfloat16" if str(device).startswith("cuda") else "float32"
    torch_dtype = getattr(torch, dtype)
    if model_type == "sam":
        model = transformers.SamModel.from_pretrained(str(path), dtype=torch_dtype).to(device).eval()
        images = transformers.SamImageProcessorPil.from_pretrained(str(path))
        processor = transformers.SamProcessor(image_processor=images)
        return Segmenter(model, processor, name=path.name)
    if model_type == "sam2":
        model = transformers.Sam2Model.from_pretrained(str(path), dtype=torch_dtype).to(device).eval()
        return Segmenter(model, None, name=path.name)
    raise ValueError(f"load_segmenter: {config_file}: model_type: expected 'sam' or 'sam2', got {model_type!r}")


class GrabCutSegmenter:
    """A promptable segmenter without weights: OpenCV GrabCut from the box, the two points as foreground seeds.

    Works on a CPU with no checkpoint (``--segmenter grabcut``), so the example's gIoU means something offline
    where a random-weight SAM cannot segment anything. ``predict`` has :class:`Segmenter`'s interface: an image,
    a box ``(x1, y1, x2, y2)`` and two positive points in the image's pixels, a boolean ``H x W`` mask.

    Method: the box is rounded and clipped to the image; ``cv2.grabCut`` runs ``iterations`` rounds initialised
    with ``GC_INIT_WITH_RECT`` (outside the box: definite background); discs of ``seed_radius`` pixels around the
    points (those inside the clipped box) are then stamped as definite foreground (``GC_FGD``) and a second
    ``GC_INIT_WITH_MASK`` pass of ``iterations`` rounds refines the mask. ``cv2.setRNGSeed(seed)`` before each
    call makes the result deterministic. GrabCut works on the box plus a margin (``margin`` pixels or 10% of the
    box's longer side, whichever is larger), downscaled to at most ``max_side`` pixels a side; the mask is scaled
    back (nearest neighbour) and is never outside the clipped box. About 0.05 s a call on one CPU thread.

    Degenerate prompts never raise: a box with no pixel inside the image (or a non-finite one) gives an empty
    mask; a clipped box too thin for GrabCut (under 3 pixels wide or high) gives the clipped box itself, as does
    a box GrabCut cannot model (no background around it: a box covering the whole image); if GrabCut finds no
    foreground the point discs are returned (empty if no point is inside the box).

    Args:
        iterations: GrabCut rounds per pass (two passes).
        seed_radius: radius in pixels (of the downscaled crop) of the foreground discs stamped at the points.
        max_side: longest side GrabCut works at.
        margin: minimum background margin around the box, in pixels.
        seed: OpenCV's RNG seed (GrabCut's GMM initialisation uses k-means).
        name: for reports.
    """

    def __init__(
        self,
        *,
        iterations: int = 3,
        seed_radius: int = 3,
        max_side: int = 160,
        margin: int = 8,
        seed: int = 0,
        name: str = "grabcut",
    ) -> None:
        if not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"GrabCutSegmenter: iterations: expected an int >= 1, got {iterations!r}")
        if not isinstance(seed_radius, int) or seed_radius < 0:
            raise ValueError(f"GrabCutSegmenter: seed_radius: expected an int >= 0, got {seed_radius!r}")
        if not isinstance(max_side, int) or max_side < 16:
            raise ValueError(f"GrabCutSegmenter: max_side: expected an int >= 16, got {max_side!r}")
        if not isinstance(margin, int) or margin < 1:
            raise ValueError(f"GrabCutSegmenter: margin: expected an int >= 1, got {margin!r}")
        self.cv2 = import_optional("cv2", extra="example", purpose="The GrabCut segmenter (opencv-python-headless)")
        self.iterations, self.seed_radius, self.max_side, self.margin = iterations, seed_radius, max_side, margin
        self.seed, self.name = seed, name

    def predict(
        self,
        image: Image.Image,
        box: tuple[float, float, float, float],
        points: tuple[tuple[float, float], tuple[float, float]],
    ) -> BoolArray:
        """The mask (``H x W`` of ``image``) for a box ``(x1, y1, x2, y2)`` and two positive points, in pixels."""
        cv2 = self.cv2
        w, h = image.size
        empty = np.zeros((h, w), dtype=bool)
        values = [float(v) for v in box]
        if len(values) != 4 or not all(np.isfinite(values)):
            return empty
        x1, y1, x2, y2 = values
        x1, x2 = sorted((x1, x2))
        y1, y2 = sorted((y1, y2))
        # inclusive pixel extent, clipped to the image
        left, top = max(0, round(x1)), max(0, round(y1))
        right, bottom = min(w - 1, round(x2)), min(h - 1, round(y2))
        if right < left or bottom < top:
            return empty
        if right - left < 2 or bottom - top < 2:  # too thin for GrabCut's models: the clipped box
            empty[top : bottom + 1, left : right + 1] = True
            return empty
        # work on the box plus a margin of background (GrabCut's background model comes from outside the box),
        # downscaled so its longest side is at most max_side: the cost grows with the pixels
        margin = max(self.margin, round(0.1 * max(right - left, bottom - top)))
        cx1, cy1 = max(0, left - margin), max(0, top - margin)
        cx2, cy2 = min(w - 1, right + margin), min(h - 1, bottom + margin)
        crop = image.convert("RGB").crop((cx1, cy1, cx2 + 1, cy2 + 1))
        cw, ch = crop.size
        scale = min(1.0, self.max_side / max(cw, ch))
        sw, sh = max(1, round(cw * scale)), max(1, round(ch * scale))
        if (sw, sh) != (cw, ch):
            crop = crop.resize((sw, sh), Image.Resampling.BILINEAR)
        fx, fy = sw / cw, sh / ch
        pixels = np.ascontiguousarray(np.asarray(crop)[:, :, ::-1])  # BGR, as OpenCV expects
        rx1, ry1 = int((left - cx1) * fx), int((top - cy1) * fy)
        rx2, ry2 = min(sw - 1, int((right - cx1 + 1) * fx)), min(sh - 1, int((bottom - cy1 + 1) * fy))
        inside = np.zeros((sh, sw), dtype=bool)
        inside[ry1 : ry2 + 1, rx1 : rx2 + 1] = True
        seeds = np.zeros((sh, sw), dtype=np.uint8)
        for point in points:
            px, py = (float(v) for v in point)
            if np.isfinite(px) and np.isfinite(py) and left <= px <= right and top <= py <= bottom:
                centre = (round((px - cx1 + 0.5) * fx - 0.5), round((py - cy1 + 0.5) * fy - 0.5))
                cv2.circle(seeds, centre, self.seed_radius, 1, thickness=-1)
        seeded = (seeds > 0) & inside
        result = seeded
        if rx2 - rx1 >= 2 and ry2 - ry1 >= 2:
            mask = np.zeros((sh, sw), dtype=np.uint8)
            rect = (rx1, ry1, rx2 - rx1 + 1, ry2 - ry1 + 1)
            background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
            try:
                cv2.setRNGSeed(self.seed)
                cv2.grabCut(pixels, mask, rect, background, foreground, self.iterations, cv2.GC_INIT_WITH_RECT)
                if seeded.any():
                    mask[seeded] = cv2.GC_FGD
                    cv2.setRNGSeed(self.seed)
                    cv2.grabCut(pixels, mask, None, background, foreground, self.iterations, cv2.GC_INIT_WITH_MASK)
                found = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)) & inside
            except cv2.error:  # no background or foreground samples (a box covering the image, a flat image)
                found = inside
            if found.any():
                result = found
        if (sw, sh) != (cw, ch):  # back to the crop's size (nearest neighbour)
            result = np.asarray(Image.fromarray(result).resize((cw, ch), Image.Resampling.NEAREST), dtype=bool)
        out = np.zeros((h, w), dtype=bool)
        out[cy1 : cy2 + 1, cx1 : cx2 + 1] = result
        out[:, :left] = out[:, right + 1 :] = False
        out[:top] = out[bottom + 1 :] = False
        return out
