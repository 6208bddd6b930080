//! Stand-ins for the device, for benchmarks of the pipeline around the encoder (tonic,
//! tokenization, batching, search), selected with the hidden `--encoder` setting:
//!
//! - `null`: no device at all; embeddings come straight from the token ids. What the service
//!   then serves is its host ceiling.
//! - `sim:fixed_us=1400,per_token_ns=330,host_us=0`: a simulated device, one thread that serves
//!   launches in FIFO order, each costing `fixed + per_token x padded tokens`, while every
//!   encoder instance does its host work (packing, the optional `host_us` per launch, output,
//!   answers) on its own thread. Its busy time over wall time shows whether N instances keep
//!   a device fed. The defaults are the H100 figures for the mt5-small shape
//!   (docs/batching-study.md: about 1.4 ms per batch from batch 1 to 64, 3.45 ms at 256 x 24).
//!
//! Embeddings of both are a deterministic unit vector per token sequence (equal texts, equal
//! vectors), so the index search downstream does its real work.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::EncoderError;

/// What produces the embeddings.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum EncoderKind {
    /// The model's ONNX graph in ONNX Runtime: the real service.
    #[default]
    Onnx,
    Simulated(SimSpec),
    Null,
}

impl FromStr for EncoderKind {
    type Err = String;

    fn from_str(s: &str) -> Result<EncoderKind, String> {
        match s {
            "onnx" => Ok(EncoderKind::Onnx),
            "null" => Ok(EncoderKind::Null),
            "sim" => Ok(EncoderKind::Simulated(SimSpec::default())),
            _ => match s.strip_prefix("sim:") {
                Some(spec) => spec.parse().map(EncoderKind::Simulated),
                None => Err(format!(
                    "unknown encoder {s:?}; expected onnx, null or sim[:fixed_us=N,per_token_ns=N,host_us=N]"
                )),
            },
        }
    }
}

impl fmt::Display for EncoderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncoderKind::Onnx => write!(f, "onnx"),
            EncoderKind::Null => write!(f, "null"),
            EncoderKind::Simulated(spec) => write!(f, "sim:{spec}"),
        }
    }
}

/// The simulated device's costs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimSpec {
    /// Device time of every launch, whatever its size.
    pub fixed: Duration,
    /// Device time per padded token (rows x longest row).
    pub per_token_ns: f64,
    /// Host time per launch on the instance's own thread (copies, launch calls), which other
    /// instances can overlap with the device's work.
    pub host: Duration,
}

impl Default for SimSpec {
    fn default() -> Self {
        SimSpec {
            fixed: Duration::from_micros(1400),
            per_token_ns: 330.0,
            host: Duration::ZERO,
        }
    }
}

impl SimSpec {
    /// Device time of one launch of `padded_tokens`.
    pub fn cost(&self, padded_tokens: usize) -> Duration {
        self.fixed + Duration::from_nanos((self.per_token_ns * padded_tokens as f64) as u64)
    }
}

impl FromStr for SimSpec {
    type Err = String;

    /// `key=value` pairs separated by commas; keys left out keep their defaults.
    fn from_str(s: &str) -> Result<SimSpec, String> {
        let mut spec = SimSpec::default();
        for pair in s.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("sim setting {pair:?} is not key=value"))?;
            let number: f64 = value
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("sim setting {key} = {value:?} is not a number >= 0"))?;
            match key {
                "fixed_us" => spec.fixed = Duration::from_secs_f64(number * 1e-6),
                "per_token_ns" => spec.per_token_ns = number,
                "host_us" => spec.host = Duration::from_secs_f64(number * 1e-6),
                _ => {
                    return Err(format!(
                        "unknown sim setting {key:?}; expected fixed_us, per_token_ns or host_us"
                    ))
                }
            }
        }
        Ok(spec)
    }
}

impl fmt::Display for SimSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fixed_us={},per_token_ns={},host_us={}",
            self.fixed.as_secs_f64() * 1e6,
            self.per_token_ns,
            self.host.as_secs_f64() * 1e6
        )
    }
}

/// Called on the device thread with each launch's device time (e.g. to count it in metrics).
pub type BusyHook = Arc<dyn Fn(Duration) + Send + Sync>;

struct Launch {
    arrived: Instant,
    cost: Duration,
    done: mpsc::SyncSender<()>,
}

/// A handle to the simulated device thread; clones share the device. The thread ends when
/// the last handle is dropped.
#[derive(Clone)]
pub struct SimDevice {
    spec: SimSpec,
    launches: mpsc::Sender<Launch>,
    busy_ns: Arc<AtomicU64>,
}

impl fmt::Debug for SimDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimDevice({})", self.spec)
    }
}

impl SimDevice {
    pub fn start(spec: SimSpec, on_busy: Option<BusyHook>) -> SimDevice {
        let (launches, queue) = mpsc::channel::<Launch>();
        let busy_ns = Arc::new(AtomicU64::new(0));
        let busy = busy_ns.clone();
        let body = move || {
            // The device's own timeline: a launch starts when it arrived or when the one
            // before it ended, whichever is later. Sleeping past an end (the OS wakes us
            // late) delays that answer but not the next launch's start.
            let mut free_at = Instant::now();
            while let Ok(launch) = queue.recv() {
                let start = free_at.max(launch.arrived);
                let end = start + launch.cost;
                let now = Instant::now();
                if end > now {
                    std::thread::sleep(end - now);
                }
                free_at = end;
                busy.fetch_add(launch.cost.as_nanos() as u64, Ordering::Relaxed);
                if let Some(hook) = &on_busy {
                    hook(launch.cost);
                }
                let _ = launch.done.send(());
            }
        };
        std::thread::Builder::new()
            .name("xling-sim-device".into())
            .spawn(body)
            .expect("the OS refused to start the simulated device thread");
        SimDevice {
            spec,
            launches,
            busy_ns,
        }
    }

    pub fn spec(&self) -> SimSpec {
        self.spec
    }

    /// Runs one launch of `padded_tokens` and returns once the device has finished it.
    pub fn run(&self, padded_tokens: usize) -> Result<(), EncoderError> {
        let (done, finished) = mpsc::sync_channel(1);
        let launch = Launch {
            arrived: Instant::now(),
            cost: self.spec.cost(padded_tokens),
            done,
        };
        let gone = || EncoderError::Inference {
            reason: "the simulated device thread is gone".into(),
        };
        self.launches.send(launch).map_err(|_| gone())?;
        finished.recv().map_err(|_| gone())
    }

    /// Device time of every launch finished so far.
    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed))
    }
}

/// A unit vector of `dim` values determined by `ids` alone.
pub fn synthetic_embedding(ids: &[i64], dim: usize) -> Vec<f32> {
    // FNV-1a over the ids, then splitmix64 per coordinate.
    let seed = ids.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &id| {
        (h ^ id as u64).wrapping_mul(0x0100_0000_01b3)
    });
    let mut v: Vec<f32> = (0..dim as u64)
        .map(|j| {
            let mut z = seed.wrapping_add(j.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm.max(f32::MIN_POSITIVE));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_print_back() {
        for text in [
            "onnx",
            "null",
            "sim:fixed_us=1400,per_token_ns=330,host_us=0",
        ] {
            assert_eq!(text.parse::<EncoderKind>().unwrap().to_string(), text);
        }
        assert_eq!(
            "sim:fixed_us=50,host_us=7".parse::<EncoderKind>(),
            Ok(EncoderKind::Simulated(SimSpec {
                fixed: Duration::from_micros(50),
                per_token_ns: 330.0,
                host: Duration::from_micros(7),
            }))
        );
        assert!("gpu"
            .parse::<EncoderKind>()
            .unwrap_err()
            .contains("onnx, null or sim"));
        assert!("sim:speed=3"
            .parse::<EncoderKind>()
            .unwrap_err()
            .contains("unknown sim setting"));
        assert!("sim:fixed_us=-1"
            .parse::<EncoderKind>()
            .unwrap_err()
            .contains("fixed_us"));
    }

    #[test]
    fn a_launch_costs_fixed_plus_per_token() {
        let spec: SimSpec = "fixed_us=100,per_token_ns=500".parse().unwrap();
        assert_eq!(spec.cost(0), Duration::from_micros(100));
        assert_eq!(spec.cost(64 * 20), Duration::from_micros(740));
    }

    /// Launches from several threads are all served, and the device counts exactly their
    /// costs (not the threads' waiting).
    #[test]
    fn the_device_serves_every_launch_and_counts_its_cost() {
        let spec: SimSpec = "fixed_us=200,per_token_ns=1000".parse().unwrap();
        let hooked = Arc::new(AtomicU64::new(0));
        let hook: BusyHook = {
            let hooked = hooked.clone();
            Arc::new(move |d| {
                hooked.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
            })
        };
        let device = SimDevice::start(spec, Some(hook));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let device = device.clone();
                std::thread::spawn(move || (0..4).for_each(|_| device.run(100).unwrap()))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let expected = Duration::from_micros(300) * 12;
        assert_eq!(device.busy(), expected);
        assert_eq!(hooked.load(Ordering::Relaxed), expected.as_nanos() as u64);
    }

    #[test]
    fn synthetic_embeddings_are_unit_and_follow_the_ids() {
        let a = synthetic_embedding(&[1, 2, 3], 64);
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(a, synthetic_embedding(&[1, 2, 3], 64));
        assert_ne!(a, synthetic_embedding(&[1, 2, 4], 64));
    }
}
