//! Loads `libonnxruntime` once per process (ONNX Runtime allows one environment per process).
//!
//! Search order: `ORT_DYLIB_PATH` (an explicit choice wins), then the setup script's copy in
//! `$XLING_HOME/onnxruntime/`.

use std::path::PathBuf;
use std::sync::OnceLock;

use ort::environment::Environment;

use crate::EncoderError;

pub const ORT_LIBRARY: &str = "libonnxruntime.so.1.31.1";

static ENVIRONMENT: OnceLock<Result<Environment, (PathBuf, String)>> = OnceLock::new();

/// The library path xling will load.
pub fn library_path() -> PathBuf {
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(path) => PathBuf::from(path),
        None => crate::xling_home().join("onnxruntime").join(ORT_LIBRARY),
    }
}

/// The process-wide ONNX Runtime environment, created on first use.
pub fn environment() -> Result<&'static Environment, EncoderError> {
    let result = ENVIRONMENT.get_or_init(|| {
        let path = library_path();
        if !path.is_file() {
            return Err((path, "no such file".into()));
        }
        let built = ort::init_from(&path)
            .map_err(|e| e.to_string())
            .and_then(|builder| {
                builder
                    .with_name("xling")
                    .build()
                    .map_err(|e| e.to_string())
            });
        built.map_err(|reason| (path, reason))
    });
    result
        .as_ref()
        .map_err(|(path, reason)| EncoderError::Runtime {
            path: path.clone(),
            reason: reason.clone(),
        })
}
