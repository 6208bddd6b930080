//! HNSW passage index over normalized embeddings, with a passage store and manifest
