"""A tiny LLaVA (CLIP vision tower + Llama decoder, ~0.2 M parameters) built and trained here, offline,
so the `transformers` escalation backend runs a real model end to end in tests.

It is trained on the exact prompts escalate_vlm sends (mpr.escalation.providers.build_prompt
through local_vlm.chat_messages and the processor's chat template) to answer from the
image alone: a light crop with dark marks is LIGHT_BRAND, a dark crop with light marks is
DARK_BRAND. The OCR hint varies during training, so only the image can decide.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import cv2
import numpy as np

BRANDS = ["Nordlys", "Kiwi"]
LIGHT_BRAND, DARK_BRAND = BRANDS
HINTS = ["VALKYRIE", "C0OP", "", "KVIKK", "ALT1BOX", "zzz", "BRUS 24", "Norsk"]
TEMPLATE = ("{% for m in messages %}{{ m['role'] }}:{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>"
            "{% else %}{{ c['text'] }}\n{% endif %}{% endfor %}{% endfor %}{% if add_generation_prompt %}assistant:"
            "{% endif %}")


def crop_jpeg(light: bool, seed: int, size: tuple[int, int] = (48, 160)) -> bytes:
    """A board-like crop: light background with dark strokes, or the reverse."""
    rng = np.random.default_rng(seed)
    h, w = size
    back = rng.integers(200, 256) if light else rng.integers(0, 60)
    image = np.full((h, w, 3), back, np.uint8)
    ink = (int(rng.integers(0, 70)),) * 3 if light else (int(rng.integers(190, 256)),) * 3
    for _ in range(int(rng.integers(3, 8))):
        x, y = int(rng.integers(0, w - 20)), int(rng.integers(h // 4, h - 4))
        cv2.putText(image, chr(int(rng.integers(65, 91))), (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.9, ink, 2)
    return cv2.imencode(".jpg", image)[1].tobytes()


def answer(brand: str | None, crop_id: str = "0") -> str:
    import json

    return json.dumps({"answers": [{"id": crop_id, "brand": brand, "confidence": 0.9}]})


def build(folder: Path, train_steps: int = 0, seed: int = 0) -> Path:
    """Write a tiny LLaVA to `folder`; with `train_steps`, trained as the module docstring says."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration,
                              LlavaProcessor, PreTrainedTokenizerFast)

    from mpr.escalation.local_vlm import chat_messages
    from mpr.escalation.providers import Query, build_prompt

    try:  # torchvision (the default image-processor backend) has no CPU build on some registries
        from transformers import CLIPImageProcessorPil as ImageProcessor
    except ImportError:
        from transformers import CLIPImageProcessor as ImageProcessor

    torch.manual_seed(seed)
    random.seed(seed)
    corpus = [p for p in build_prompt([Query("0", b"", "x")], BRANDS) if isinstance(p, str)]
    corpus += [answer(b) for b in BRANDS + [None]] + ["user assistant"]
    words = Tokenizer(models.WordLevel(unk_token="<unk>"))
    # The reply's fixed JSON pieces are single tokens: a model this small learns a 6-token answer quickly.
    pieces = "|".join(re.escape(p) for p in answer("@@").split("@@"))
    words.pre_tokenizer = pre_tokenizers.Split(Regex(pieces + r"|\s+|\w+|[^\w\s]"), behavior="isolated")
    words.decoder = decoders.Fuse()  # whitespace is a token of its own: decoding only concatenates
    words.train_from_iterator(corpus, trainers.WordLevelTrainer(
        special_tokens=["<unk>", "<pad>", "<s>", "</s>", "<image>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, unk_token="<unk>", pad_token="<pad>",
                                        bos_token="<s>", eos_token="</s>", clean_up_tokenization_spaces=False,
                                        extra_special_tokens={"image_token": "<image>"})
    processor = LlavaProcessor(
        image_processor=ImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer, patch_size=8, vision_feature_select_strategy="default", chat_template=TEMPLATE,
        num_additional_image_tokens=1)
    ids = tokenizer.convert_tokens_to_ids
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                       num_attention_heads=2, image_size=32, patch_size=8),
        text_config=LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                max_position_embeddings=1024, pad_token_id=ids("<pad>"), bos_token_id=ids("<s>"),
                                eos_token_id=ids("</s>")),
        image_token_id=ids("<image>"), vision_feature_select_strategy="default", vision_feature_layer=-1)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids("</s>")
    model.generation_config.pad_token_id = ids("<pad>")
    if train_steps:
        _train(model, processor, train_steps, chat_messages, build_prompt, Query)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _train(model, processor, steps, chat_messages, build_prompt, Query) -> None:
    import torch

    eos = processor.tokenizer.eos_token_id
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        light = step % 2 == 0
        parts = build_prompt([Query("0", crop_jpeg(light, step), random.choice(HINTS))], BRANDS)
        prompt = processor.apply_chat_template(chat_messages(parts), add_generation_prompt=True, tokenize=True,
                                               return_dict=True, return_tensors="pt")
        target = processor.tokenizer(answer(LIGHT_BRAND if light else DARK_BRAND),
                                     add_special_tokens=False, return_tensors="pt").input_ids
        target = torch.cat([target, torch.tensor([[eos]])], dim=1)
        input_ids = torch.cat([prompt["input_ids"], target], dim=1)
        labels = torch.cat([torch.full_like(prompt["input_ids"], -100), target], dim=1)
        loss = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                     pixel_values=prompt["pixel_values"], labels=labels).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    model.eval()
