//! Generates the `xling.v1` types into `OUT_DIR` (never committed) plus the file descriptor
//! set that server reflection serves.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `$PROTOC` wins so distributions can use their own; otherwise the vendored binary keeps
    // the build offline.
    if std::env::var_os("PROTOC").is_none() {
        std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let protos = [
        root.join("xling/v1/retrieval.proto"),
        root.join("xling/v1/admin.proto"),
    ];
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("xling_descriptor.bin"))
        .compile_protos(&protos, std::slice::from_ref(&root))?;
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    Ok(())
}
