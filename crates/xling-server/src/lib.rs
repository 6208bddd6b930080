//! The xling gRPC server: validation, batching, encoding, search, metrics, health
