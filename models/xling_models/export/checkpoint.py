"""Loads an encoder checkpoint and wraps it so its output is the pooled, normalised embedding."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoTokenizer,
    MT5EncoderModel,
    T5EncoderModel,
    UMT5EncoderModel,
)

ENCODERS = {"mt5": MT5EncoderModel, "t5": T5EncoderModel, "umt5": UMT5EncoderModel}


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be exported."""


class PooledEncoder(torch.nn.Module):
    """encoder -> mean over real tokens -> unit length; the graph the xling server expects."""

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(mean, p=2.0, dim=-1, eps=1e-12)


def load(checkpoint: Path) -> tuple[PooledEncoder, int, str]:
    """The wrapped encoder in fp32 eval mode, its width and its model type."""
    if not (checkpoint / "config.json").is_file():
        raise CheckpointError(f"{checkpoint}: no config.json (expected a Hugging Face checkpoint folder)")
    config = AutoConfig.from_pretrained(checkpoint)
    cls = ENCODERS.get(config.model_type)
    if cls is None:
        raise CheckpointError(
            f"{checkpoint}: model_type {config.model_type!r} is not supported; expected one of {', '.join(ENCODERS)}"
        )
    # Eager attention: the ONNX exporters trace it reliably; sdpa gains nothing in a static graph.
    encoder = cls.from_pretrained(checkpoint, torch_dtype=torch.float32, attn_implementation="eager")
    return PooledEncoder(encoder).eval(), int(config.d_model), config.model_type


def tokenizer_json(checkpoint: Path) -> str:
    """HF tokenizers JSON: the checkpoint's own, or converted from its SentencePiece model."""
    try:
        tok = AutoTokenizer.from_pretrained(checkpoint)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{checkpoint}: cannot load its tokenizer: {e}") from e
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise CheckpointError(f"{checkpoint}: tokenizer {type(tok).__name__} has no tokenizers backend")
    return backend.to_str()
