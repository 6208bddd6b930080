//! [`Encoder`]: one ONNX Runtime session that turns a batch of [`Tokens`] into embeddings.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::TensorRef;

use crate::manifest::Pooling;
use crate::pack::Packed;
use crate::sim::{synthetic_embedding, SimDevice};
use crate::{runtime, EncoderError, Manifest, Mode, TextTokenizer, Tokens};

/// Where the graph runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// ONNX Runtime's CUDA execution provider on the given GPU.
    Cuda(i32),
}

impl FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> Result<Device, String> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<i32>().ok())
                .filter(|n| *n >= 0)
                .map(Device::Cuda)
                .ok_or_else(|| format!("unknown device {s:?}; expected cpu, cuda or cuda:N")),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct EncoderOptions {
    pub device: Device,
    /// ONNX Runtime intra-op threads; 0 lets ONNX Runtime use one per physical core.
    pub intra_threads: usize,
}

pub struct Encoder {
    runner: Runner,
    manifest: Manifest,
    tokenizer: TextTokenizer,
    device: Device,
    /// Input buffers reused across batches.
    packed: Packed,
}

/// What runs a packed batch.
enum Runner {
    Onnx {
        session: Session,
        /// Some graphs (BERT exports) also take `token_type_ids`; we feed zeros then.
        wants_token_types: bool,
    },
    Simulated(SimDevice),
    Null,
}

/// What an [`Encoder`] runs its batches on; [`EncoderKind`] says which, `Simulated` carries
/// the device that several encoders (instances) share.
#[derive(Debug, Clone)]
pub enum Backend {
    Onnx,
    Simulated(SimDevice),
    Null,
}

impl Encoder {
    /// Loads `dir/model.toml`, its tokenizer and its ONNX graph on the chosen device.
    pub fn load(dir: &Path, options: &EncoderOptions) -> Result<Encoder, EncoderError> {
        Encoder::load_backend(dir, options, Backend::Onnx)
    }

    /// Like [`Encoder::load`]; a simulated or null backend reads only the manifest and the
    /// tokenizer (see `sim`).
    pub fn load_backend(
        dir: &Path,
        options: &EncoderOptions,
        backend: Backend,
    ) -> Result<Encoder, EncoderError> {
        let manifest = Manifest::load(dir)?;
        let tokenizer = TextTokenizer::load(dir, &manifest)?;
        let runner = match backend {
            Backend::Onnx => onnx_runner(&manifest.onnx_path(dir), &manifest, options)?,
            Backend::Simulated(device) => Runner::Simulated(device),
            Backend::Null => Runner::Null,
        };
        Ok(Encoder {
            runner,
            manifest,
            tokenizer,
            device: options.device,
            packed: Packed::default(),
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Tokenizes and encodes `texts` as one batch.
    pub fn embed(&mut self, texts: &[&str], mode: Mode) -> Result<Vec<Vec<f32>>, EncoderError> {
        let tokens = texts
            .iter()
            .map(|t| self.tokenizer.tokenize(t, mode))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&Tokens> = tokens.iter().collect();
        self.encode(&refs)
    }

    /// Encodes one batch, right-padded to its longest member; one L2-normalized row per input.
    pub fn encode(&mut self, batch: &[&Tokens]) -> Result<Vec<Vec<f32>>, EncoderError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let (rows, cols) = self.packed.pack(batch, self.manifest.pad_id);
        let dim = self.manifest.dim;
        let synthetic = || {
            batch
                .iter()
                .map(|t| synthetic_embedding(&t.ids, dim))
                .collect()
        };
        let (session, wants_token_types) = match &mut self.runner {
            Runner::Onnx {
                session,
                wants_token_types,
            } => (session, *wants_token_types),
            Runner::Simulated(device) => {
                let host = device.spec().host;
                if !host.is_zero() {
                    std::thread::sleep(host);
                }
                device.run(rows * cols)?;
                return Ok(synthetic());
            }
            Runner::Null => return Ok(synthetic()),
        };
        let packed = &self.packed;
        let shape = [rows, cols];
        let mut inputs: Vec<(&str, SessionInputValue)> = vec![
            ("input_ids", view(shape, packed.ids())?),
            ("attention_mask", view(shape, packed.mask())?),
        ];
        if wants_token_types {
            inputs.push(("token_type_ids", view(shape, packed.types())?));
        }
        let outputs = session.run(inputs).map_err(inference)?;
        let (out_shape, data) = outputs[self.manifest.output.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(inference)?;
        let dims: Vec<usize> = out_shape.iter().map(|&d| d as usize).collect();
        let pooled = pool(self.manifest.pooling, &dims, data, rows)?;
        if pooled.first().map(Vec::len) != Some(dim) {
            return Err(EncoderError::Inference {
                reason: format!("output shape {dims:?} does not give dim {dim} from model.toml"),
            });
        }
        Ok(pooled.into_iter().map(normalize).collect())
    }
}

/// Opens the graph and checks it has the inputs and the output xling feeds and reads.
fn onnx_runner(
    onnx: &Path,
    manifest: &Manifest,
    options: &EncoderOptions,
) -> Result<Runner, EncoderError> {
    let fail = |reason: String| EncoderError::Session {
        path: onnx.to_path_buf(),
        reason,
    };
    if !onnx.is_file() {
        return Err(fail("no such file".into()));
    }
    let session = build_session(onnx, options)?;
    let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
    for required in ["input_ids", "attention_mask"] {
        if !names.contains(&required) {
            return Err(fail(format!(
                "graph has no input {required:?} (inputs: {names:?})"
            )));
        }
    }
    let wants_token_types = names.contains(&"token_type_ids");
    if !session
        .outputs()
        .iter()
        .any(|o| o.name() == manifest.output)
    {
        return Err(fail(format!(
            "graph has no output {:?} named in model.toml",
            manifest.output
        )));
    }
    Ok(Runner::Onnx {
        session,
        wants_token_types,
    })
}

fn build_session(onnx: &Path, options: &EncoderOptions) -> Result<Session, EncoderError> {
    let environment = runtime::environment()?;
    let fail = |reason: String| EncoderError::Session {
        path: onnx.to_path_buf(),
        reason,
    };
    let mut builder = Session::builder(environment)
        .map_err(|e| fail(e.to_string()))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| fail(e.to_string()))?
        .with_inter_threads(1)
        .map_err(|e| fail(e.to_string()))?;
    // On CUDA the host thread only launches kernels and waits: one intra-op thread, and no
    // thread spinning for work that never comes (it would take cores from tokenization).
    let intra_threads = match (options.device, options.intra_threads) {
        (Device::Cuda(_), 0) => 1,
        (_, n) => n,
    };
    if intra_threads > 0 {
        builder = builder
            .with_intra_threads(intra_threads)
            .map_err(|e| fail(e.to_string()))?;
    }
    if let Device::Cuda(id) = options.device {
        builder = builder
            .with_intra_op_spinning(false)
            .map_err(|e| fail(e.to_string()))?
            .with_inter_op_spinning(false)
            .map_err(|e| fail(e.to_string()))?;
        builder = with_cuda(builder, id)?;
    }
    builder
        .commit_from_file(onnx)
        .map_err(|e| fail(e.to_string()))
}

/// Registers the CUDA provider so that failure is an error, never a silent run on CPU.
#[cfg(feature = "cuda")]
fn with_cuda(
    builder: ort::session::builder::SessionBuilder,
    id: i32,
) -> Result<ort::session::builder::SessionBuilder, EncoderError> {
    let provider = ort::ep::CUDA::default()
        .with_device_id(id)
        .build()
        .error_on_failure();
    builder
        .with_execution_providers([provider])
        .map_err(|e| EncoderError::Device {
            device: Device::Cuda(id).to_string(),
            reason: format!(
                "{e} (is {} the onnxruntime-gpu build, with CUDA 13 and cuDNN on LD_LIBRARY_PATH?)",
                runtime::library_path().display()
            ),
        })
}

#[cfg(not(feature = "cuda"))]
fn with_cuda(
    _builder: ort::session::builder::SessionBuilder,
    id: i32,
) -> Result<ort::session::builder::SessionBuilder, EncoderError> {
    Err(EncoderError::Device {
        device: Device::Cuda(id).to_string(),
        reason: "this binary was built without the `cuda` cargo feature".into(),
    })
}

/// Borrows a packed buffer as an input tensor (no copy).
fn view(shape: [usize; 2], data: &[i64]) -> Result<SessionInputValue<'_>, EncoderError> {
    TensorRef::from_array_view((shape, data))
        .map(SessionInputValue::from)
        .map_err(inference)
}

fn inference(e: impl fmt::Display) -> EncoderError {
    EncoderError::Inference {
        reason: e.to_string(),
    }
}

/// Turns the graph's `[rows, dim]` output into one vector per row (the graph pools).
fn pool(
    pooling: Pooling,
    dims: &[usize],
    data: &[f32],
    rows: usize,
) -> Result<Vec<Vec<f32>>, EncoderError> {
    match (pooling, dims) {
        (Pooling::Graph, &[r, d]) if r == rows => Ok(data.chunks(d).map(<[f32]>::to_vec).collect()),
        _ => Err(EncoderError::Inference {
            reason: format!("output shape {dims:?} does not fit pooling {pooling:?}"),
        }),
    }
}

fn normalize(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse::<Device>(), Ok(Device::Cpu));
        assert_eq!("cuda".parse::<Device>(), Ok(Device::Cuda(0)));
        assert_eq!("cuda:3".parse::<Device>(), Ok(Device::Cuda(3)));
        assert!("cuda:-1".parse::<Device>().is_err());
        assert!("gpu"
            .parse::<Device>()
            .unwrap_err()
            .contains("expected cpu"));
        assert_eq!(Device::Cuda(2).to_string(), "cuda:2");
    }

    #[test]
    fn graph_pooling_takes_rows_and_refuses_other_shapes() {
        let data = [1., 2., 3., 4., 5., 6.];
        let pooled = pool(Pooling::Graph, &[2, 3], &data, 2).unwrap();
        assert_eq!(pooled, vec![vec![1., 2., 3.], vec![4., 5., 6.]]);
        let err = pool(Pooling::Graph, &[2, 1, 3], &data, 2).unwrap_err();
        assert!(err.to_string().contains("[2, 1, 3]"), "{err}");
    }

    #[test]
    fn normalizes_to_unit_length_and_keeps_zero() {
        assert_eq!(normalize(vec![3., 4.]), vec![0.6, 0.8]);
        assert_eq!(normalize(vec![0., 0.]), vec![0., 0.]);
    }
}
