//! The `xling.v1` gRPC API, generated from `proto/xling/v1/retrieval.proto` and `admin.proto`.

pub mod v1 {
    tonic::include_proto!("xling.v1");

    /// Encoded `FileDescriptorSet` for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("xling_descriptor");
}
