//! The encoder on the committed tiny mT5-shaped model, through the real ONNX Runtime.

use std::path::PathBuf;

use xling_encoder::{Device, Encoder, EncoderOptions, Mode, Tokens};

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/mt5-tiny")
}

fn encoder() -> Encoder {
    let options = EncoderOptions {
        device: Device::Cpu,
        intra_threads: 1,
    };
    Encoder::load(&model_dir(), &options).expect("run scripts/setup.sh to fetch ONNX Runtime")
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn alone_or_in_a_padded_batch_gives_the_same_embedding() {
    let mut encoder = encoder();
    let texts = [
        "Wo liegt der höchste Berg Europas?",
        "海",
        "The quick brown fox jumps over the lazy dog near the river bank in the early morning.",
        "¿Cuál es la capital de Perú?",
    ];
    let batch = encoder.embed(&texts, Mode::Query).unwrap();
    for (text, in_batch) in texts.iter().zip(&batch) {
        let alone = encoder.embed(&[text], Mode::Query).unwrap().remove(0);
        let diff = max_abs_diff(&alone, in_batch);
        assert!(diff <= 1e-5, "{text:?}: max abs diff {diff}");
    }
}

#[test]
fn embeddings_are_unit_length_and_differ_by_text() {
    let mut encoder = encoder();
    let out = encoder
        .embed(&["ein Hund", "a cat", "ein Hund"], Mode::Passage)
        .unwrap();
    assert_eq!(out.len(), 3);
    for v in &out {
        assert_eq!(v.len(), encoder.manifest().dim);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
    assert!(max_abs_diff(&out[0], &out[1]) > 1e-3);
    assert!(max_abs_diff(&out[0], &out[2]) < 1e-6);
}

#[test]
fn long_texts_are_truncated_to_max_length_and_say_so() {
    let encoder = encoder();
    let max = encoder.manifest().max_length;
    let long = "Mehrsprachige Suche über viele Sprachen hinweg. ".repeat(400);
    let tokens = encoder.tokenizer().tokenize(&long, Mode::Query).unwrap();
    assert!(tokens.truncated);
    assert_eq!(tokens.len(), max);
    let short = encoder.tokenizer().tokenize("kurz", Mode::Query).unwrap();
    assert!(!short.truncated && short.len() < 10);
}

#[test]
fn an_empty_batch_is_empty_and_a_batch_of_one_token_works() {
    let mut encoder = encoder();
    assert!(encoder.encode(&[]).unwrap().is_empty());
    let one = Tokens {
        ids: vec![1],
        truncated: false,
    };
    assert_eq!(encoder.encode(&[&one]).unwrap().len(), 1);
}

fn load_on_cuda0() -> String {
    let options = EncoderOptions {
        device: Device::Cuda(0),
        intra_threads: 1,
    };
    Encoder::load(&model_dir(), &options)
        .err()
        .expect("CUDA that cannot be had must fail, never fall back to CPU")
        .to_string()
}

/// Built without the `cuda` feature, no library can give CUDA, and the error says why.
#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_cuda_feature_fails_loudly() {
    let err = load_on_cuda0();
    assert!(err.contains("cuda:0"), "{err}");
    assert!(err.contains("`cuda` cargo feature"), "{err}");
}

/// Built with the `cuda` feature (as `cargo test --workspace` builds it, through the `xling`
/// binary's default features), a library without ONNX Runtime's CUDA provider (the setup
/// script's CPU build) must make `cuda:0` fail. Which library is loaded is asked of the library
/// itself, not guessed from `ORT_DYLIB_PATH`, which may well point at the CPU build.
#[cfg(feature = "cuda")]
#[test]
fn cuda_that_cannot_be_had_fails_loudly() {
    use ort::ep::ExecutionProvider;
    xling_encoder::runtime::environment().expect("run scripts/setup.sh to fetch ONNX Runtime");
    let library = xling_encoder::runtime::library_path();
    if ort::ep::CUDA::is_available().expect("ONNX Runtime lists its providers") {
        // Whether cuda:0 can be had now depends on the machine's GPU, not on xling; the GPU
        // runs (load-tests/sweep/gpu-run.sh) serve on it.
        eprintln!(
            "SKIPPED cuda_that_cannot_be_had_fails_loudly: {} is a CUDA build of ONNX Runtime",
            library.display()
        );
        return;
    }
    let err = load_on_cuda0();
    assert!(err.contains("cuda:0"), "{err}");
    assert!(err.contains(&library.display().to_string()), "{err}");
}

#[test]
fn a_missing_model_folder_names_the_file() {
    let err = Encoder::load(&model_dir().join("nope"), &EncoderOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("nope/model.toml"), "{err}");
}
