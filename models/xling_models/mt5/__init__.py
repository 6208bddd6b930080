"""mT5 encoders with seeded random weights, built without torch, as xling model folders.

The graph is the real mT5 encoder (T5 RMSNorm, unscaled attention with bucketed relative position
bias shared from block 0, gated-GELU FFN) plus mean pooling and L2 normalisation; only the
vocabulary is reduced (a SentencePiece Unigram model trained on a small multilingual corpus), so
the compute cost matches mt5-small / mt5-base apart from the embedding lookup.

Layout:
- ``weights.py``: shapes (tiny, mt5-small, mt5-base), seeded weights in Hugging Face naming,
  relative position buckets.
- ``graph.py``: the ONNX graph from those weights (onnx.helper + numpy).
- ``tokenizer.py``: corpus reading, deterministic SentencePiece training, HF tokenizer.json.
- ``generate.py``: one model folder (model.toml, model.onnx, tokenizer.json), written atomically.
- ``__main__.py``: ``python -m xling_models.mt5 --shape tiny --out DIR [--seed 0]``.
- ``corpus/``: the built-in training text (one file per language, written for this repo).
"""
