"""Hugging Face mT5 / T5 / UMT5 encoder checkpoints -> verified xling model folders.

The encoder is wrapped with mean pooling over the attention mask and L2 normalisation, exported
to ONNX with dynamic batch and sequence axes, optionally converted to fp16 or int8, and then
checked against PyTorch on a padded multilingual batch; a folder that fails the check is not
written. Needs torch + transformers (models/requirements-export.txt).

Layout:
- ``checkpoint.py``: loading the checkpoint (encoder class by ``model_type``), the pooled wrapper,
  the tokenizer.json from the checkpoint's tokenizer.
- ``onnx_export.py``: torch -> ONNX fp32, and the fp16 / int8 conversions.
- ``verify.py``: ONNX Runtime vs PyTorch figures and the pass/fail thresholds.
- ``__main__.py``: ``python -m xling_models.export --checkpoint DIR --out DIR [--precision ...]``.
"""
