//! Tokenizer and ONNX Runtime encoder for xling model folders
