//! Which [`Scheme`] an adapter runs, per [`Layout`]: chosen at first use on a [`Gpu`] by timing
//! the [`CANDIDATES`] on a representative shape and keeping the fastest, then remembered on
//! that `Gpu` and, natively, in the tuning cache file under the adapter's name, vendor, device,
//! driver and backend (`TuneCache`, in `native.rs` / `browser.rs`).
//!
//! Timing is wall-clock around whole submits (`R` dispatches of the candidate in one compute
//! pass, then a 16-byte readback to wait for them), with `R` raised until a submit takes about
//! [`TARGET_SECONDS`], so fixed costs per submit fade; the best of two submits counts. It needs
//! no timestamp queries, so it works the same in every browser. Tuning stops starting new
//! candidates after [`GPU_BUDGET_SECONDS`] (pipeline compiles included); a CPU adapter (lavapipe,
//! SwiftShader) is not timed unless asked ([`Timing::Always`]): it gets [`CPU_DEFAULT`], the
//! scheme that won there when timed (SwiftShader needs about 5 s to time them all).
//!
//! Because every variant gives the same bits, a choice changes speed only, never results: a
//! stale or wrong cache entry can cost time, not correctness. Entries name the kernels they
//! were measured with (a digest of the template, the built-in kernels and the candidate list),
//! so a build with different kernels tunes again.
//!
//! The file's JSON is written and read here by hand (`serde_json::Value`): it is a private
//! cache, not a wire type, and nothing outside `proto` and the relay's store derives serde.

use std::collections::HashMap;
use std::sync::Mutex;

use hyphae_proto::frame::AdapterInfo;
use hyphae_proto::tensor::to_bytes;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::platform;
pub use super::platform::TuneCache;
use super::{CANDIDATES, CPU_DEFAULT, GPU_DEFAULT, Layout, MatmulPlan, Scheme, Variant, wgsl};
use crate::ExecError;
use crate::executor::{Gpu, GpuBuffer, Pipeline, Program};

/// Seconds of GPU work one timed submit aims for.
pub const TARGET_SECONDS: f64 = 0.01;
/// The most dispatches in one timed submit.
pub const MAX_REPEATS: u32 = 64;
/// After this many seconds of tuning a layout, no further candidate is started.
pub const GPU_BUDGET_SECONDS: f64 = 1.0;
/// The same on a CPU adapter, where tuning only runs when asked.
pub const CPU_BUDGET_SECONDS: f64 = 1.5;

/// When to time the candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// Time them, except on a CPU adapter, which gets [`CPU_DEFAULT`] untimed.
    Auto,
    /// Time them on any adapter (benchmarks).
    Always,
}

/// Where a choice came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Timed now, on this `Gpu`.
    Measured,
    /// Read from the tuning cache, measured earlier on the same adapter and driver.
    Cached,
    /// Not timed: a CPU adapter under [`Timing::Auto`], or no candidate could be timed.
    Default,
}

/// One candidate's time.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    pub scheme: Scheme,
    /// Seconds per product of the tuning shape, or why it could not be timed.
    pub seconds: Result<f64, String>,
}

/// What [`Gpu::tune_matmul`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct TuneReport {
    pub layout: Layout,
    pub chosen: Scheme,
    pub origin: Origin,
    /// The tuning shape, M×N×K.
    pub shape: [u32; 3],
    /// Candidates in the order they were timed (empty unless measured).
    pub measured: Vec<Measurement>,
    /// Whether a measured choice reached the tuning cache (`None`: nothing to write).
    pub saved: Option<Result<(), String>>,
}

/// An adapter as the tuning cache knows it: results hold for this device with this driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterKey {
    pub name: String,
    pub vendor: u32,
    pub device: u32,
    pub driver: String,
    pub backend: String,
}

impl AdapterKey {
    pub fn of(info: &AdapterInfo) -> AdapterKey {
        AdapterKey {
            name: info.name.clone(),
            vendor: info.vendor,
            device: info.device,
            driver: info.driver.clone(),
            backend: info.backend.clone(),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "vendor": self.vendor,
            "device": self.device,
            "driver": self.driver,
            "backend": self.backend,
        })
    }

    fn matches(&self, value: &Value) -> bool {
        *value == self.to_json()
    }
}

/// Whether timing would only tell what [`CPU_DEFAULT`] already says: a software adapter.
pub fn is_cpu_adapter(info: &AdapterInfo) -> bool {
    let name = info.name.to_lowercase();
    info.device_type == "cpu" || ["swiftshader", "llvmpipe", "lavapipe"].iter().any(|soft| name.contains(soft))
}

/// A digest of what tuning results depend on: the template, the built-in kernels and the
/// candidate list. Hex, 16 characters.
pub fn kernels_digest() -> String {
    let mut hasher = Sha256::new();
    hasher.update(wgsl::template());
    for layout in Layout::ALL {
        hasher.update(layout.kernel().source);
    }
    for scheme in CANDIDATES {
        hasher.update(scheme.name());
        hasher.update([0]);
    }
    hasher.finalize().iter().take(8).map(|byte| format!("{byte:02x}")).collect()
}

/// The tuning cache's contents: `{"version": 1, "entries": [{adapter, kernels, layout,
/// scheme}, …]}`. Unreadable text reads as empty (the cache is only ever a shortcut).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TuneFile {
    entries: Vec<Value>,
}

impl TuneFile {
    const VERSION: u64 = 1;

    pub fn parse(text: &str) -> TuneFile {
        let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        if value["version"].as_u64() != Some(Self::VERSION) {
            return TuneFile::default();
        }
        TuneFile { entries: value["entries"].as_array().cloned().unwrap_or_default() }
    }

    pub fn render(&self) -> String {
        let value = json!({"version": Self::VERSION, "entries": self.entries});
        serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
    }

    /// The scheme measured for this adapter, kernels and layout, if it is still a candidate.
    pub fn lookup(&self, adapter: &AdapterKey, kernels: &str, layout: Layout) -> Option<Scheme> {
        self.entries
            .iter()
            .find(|e| adapter.matches(&e["adapter"]) && e["kernels"] == kernels && e["layout"] == layout.name())
            .and_then(|e| e["scheme"].as_str())
            .and_then(Scheme::parse)
    }

    /// Records `scheme`, replacing this adapter's entry for the layout and dropping its entries
    /// for other kernels (measured with a build that is gone).
    pub fn insert(&mut self, adapter: &AdapterKey, kernels: &str, layout: Layout, scheme: Scheme) {
        self.entries
            .retain(|e| !(adapter.matches(&e["adapter"]) && (e["kernels"] != kernels || e["layout"] == layout.name())));
        self.entries.push(json!({
            "adapter": adapter.to_json(),
            "kernels": kernels,
            "layout": layout.name(),
            "scheme": scheme.name(),
        }));
    }
}

/// A `Gpu`'s tuning state: where results persist, and the choices made on it so far.
#[derive(Debug)]
pub(crate) struct Tuning {
    cache: TuneCache,
    chosen: Mutex<HashMap<Layout, Scheme>>,
}

impl Tuning {
    pub(crate) fn new(cache: TuneCache) -> Tuning {
        Tuning { cache, chosen: Mutex::new(HashMap::new()) }
    }

    fn get(&self, layout: Layout) -> Option<Scheme> {
        lock(&self.chosen).get(&layout).copied()
    }

    fn set(&self, layout: Layout, scheme: Scheme) {
        lock(&self.chosen).insert(layout, scheme);
    }

    fn load(&self) -> TuneFile {
        platform::load_text(&self.cache).map(|text| TuneFile::parse(&text)).unwrap_or_default()
    }

    fn save(&self, adapter: &AdapterKey, layout: Layout, scheme: Scheme) -> Result<(), String> {
        let mut file = self.load();
        file.insert(adapter, &kernels_digest(), layout, scheme);
        platform::store_text(&self.cache, &file.render())
    }
}

/// What timing one candidate gave: seconds per product, or why not; and the seconds it took
/// (compiling included), which count against the budget either way.
#[derive(Debug)]
pub(crate) struct Timed {
    pub per_run: Result<f64, ExecError>,
    pub spent: f64,
}

/// Times `candidates` in order with `time` until `budget` seconds are spent (the first is
/// always timed) and returns the fastest, or `default` if none could be timed.
pub(crate) async fn select<F, Fut>(
    candidates: &[Scheme],
    default: Scheme,
    budget: f64,
    mut time: F,
) -> (Scheme, Vec<Measurement>)
where
    F: FnMut(Scheme) -> Fut,
    Fut: Future<Output = Timed>,
{
    let mut spent = 0.0;
    let mut best: Option<(Scheme, f64)> = None;
    let mut measured = Vec::with_capacity(candidates.len());
    for &scheme in candidates {
        if spent >= budget {
            break;
        }
        let timed = time(scheme).await;
        spent += timed.spent;
        if let Ok(seconds) = timed.per_run
            && best.is_none_or(|(_, fastest)| seconds < fastest)
        {
            best = Some((scheme, seconds));
        }
        measured.push(Measurement { scheme, seconds: timed.per_run.map_err(|e| e.to_string()) });
    }
    (best.map_or(default, |(scheme, _)| scheme), measured)
}

/// The tuning shape of each layout, M×N×K: a square product, and MiniLM's FFN projection over
/// a batch of sentences; smaller on a CPU adapter.
pub fn tuning_shape(layout: Layout, cpu: bool) -> [u32; 3] {
    match (layout, cpu) {
        (Layout::Matmul, false) => [1024, 1024, 1024],
        (Layout::Linear, false) => [2048, 1536, 384],
        (Layout::Matmul, true) => [256, 256, 256],
        (Layout::Linear, true) => [256, 384, 384],
    }
}

/// Operands of the tuning shape, on the GPU: inputs of small nonzero values.
struct Operands {
    params: GpuBuffer,
    a: GpuBuffer,
    b: GpuBuffer,
    bias: GpuBuffer,
    c: GpuBuffer,
}

impl Operands {
    async fn new(gpu: &Gpu, layout: Layout, [m, n, k]: [u32; 3]) -> Result<Operands, ExecError> {
        let values = |len: u32| -> Vec<u8> {
            let values: Vec<f32> = (0..len).map(|i| ((i % 13) as f32 - 6.0) / 8.0).collect();
            to_bytes(&values, f32::to_le_bytes)
        };
        Ok(Operands {
            params: gpu.upload(&to_bytes(&layout.params(m, n, k, true), u32::to_le_bytes)).await?,
            a: gpu.upload(&values(m * k)).await?,
            b: gpu.upload(&values(k * n)).await?,
            bias: gpu.upload(&values(n)).await?,
            c: gpu.buffer(u64::from(m * n) * 4).await?,
        })
    }

    fn bindings(&self, layout: Layout) -> Vec<(u32, &GpuBuffer)> {
        match layout {
            Layout::Matmul => vec![(0, &self.params), (1, &self.a), (2, &self.b), (3, &self.c)],
            Layout::Linear => vec![(0, &self.params), (1, &self.a), (2, &self.b), (3, &self.bias), (4, &self.c)],
        }
    }
}

impl Gpu {
    /// The plan for an M×N×K product in `layout` on this adapter: the tuned scheme (tuned at
    /// first use, see [`Gpu::matmul_scheme`]), vec4 where K and N are multiples of 4, its
    /// pipeline and workgroups. If the device refuses a tiled variant that naga accepted, the
    /// built-in kernel runs instead (and stays chosen on this `Gpu`).
    pub async fn matmul_plan(&self, layout: Layout, m: u32, n: u32, k: u32) -> Result<MatmulPlan, ExecError> {
        let scheme = self.matmul_scheme(layout).await?;
        let variant = Variant::for_shape(layout, scheme, n, k);
        let (variant, pipeline) = match self.variant_pipeline(variant).await {
            Ok(pipeline) => (variant, pipeline),
            Err(ExecError::InvalidShader(_) | ExecError::ExceedsLimits { .. }) if scheme != Scheme::Registers => {
                self.tuning.set(layout, Scheme::Registers);
                let fallback = Variant::for_shape(layout, Scheme::Registers, n, k);
                (fallback, self.variant_pipeline(fallback).await?)
            }
            Err(error) => return Err(error),
        };
        Ok(MatmulPlan { variant, pipeline, workgroups: variant.workgroups(m, n) })
    }

    /// Makes this `Gpu` run `scheme` for `layout` from now on, as if tuning had chosen it (for
    /// tests and benchmarks that compare schemes; results are the same bits whatever it is).
    pub fn use_matmul_scheme(&self, layout: Layout, scheme: Scheme) {
        self.tuning.set(layout, scheme);
    }

    /// The compiled pipeline of one variant.
    pub async fn variant_pipeline(&self, variant: Variant) -> Result<Pipeline, ExecError> {
        self.pipeline(&variant.source(), "main", &variant.layout.bindings()).await
    }

    /// The scheme this `Gpu` runs for `layout`: chosen earlier on it, else found in the tuning
    /// cache for this adapter, else tuned now ([`Timing::Auto`]).
    pub async fn matmul_scheme(&self, layout: Layout) -> Result<Scheme, ExecError> {
        if let Some(scheme) = self.tuning.get(layout) {
            return Ok(scheme);
        }
        let adapter = AdapterKey::of(&self.adapter_info());
        let cached = self.tuning.load().lookup(&adapter, &kernels_digest(), layout);
        if let Some(scheme) = cached.filter(|scheme| scheme.fits(&self.limits())) {
            self.tuning.set(layout, scheme);
            return Ok(scheme);
        }
        Ok(self.tune_matmul(layout, Timing::Auto).await?.chosen)
    }

    /// Tunes `layout` now, whatever was chosen before: times the candidates that fit this
    /// device (unless `timing` lets a CPU adapter skip it), keeps the fastest on this `Gpu` and
    /// writes a measured choice to the tuning cache.
    pub async fn tune_matmul(&self, layout: Layout, timing: Timing) -> Result<TuneReport, ExecError> {
        let info = self.adapter_info();
        let cpu = is_cpu_adapter(&info);
        let shape = tuning_shape(layout, cpu);
        if cpu && timing == Timing::Auto {
            self.tuning.set(layout, CPU_DEFAULT);
            return Ok(TuneReport {
                layout,
                chosen: CPU_DEFAULT,
                origin: Origin::Default,
                shape,
                measured: Vec::new(),
                saved: None,
            });
        }
        let limits = self.limits();
        let candidates: Vec<Scheme> = CANDIDATES.into_iter().filter(|scheme| scheme.fits(&limits)).collect();
        let default = if cpu { CPU_DEFAULT } else { GPU_DEFAULT };
        let default = if default.fits(&limits) { default } else { Scheme::Registers };
        let operands = Operands::new(self, layout, shape).await?;
        let budget = if cpu { CPU_BUDGET_SECONDS } else { GPU_BUDGET_SECONDS };
        let (chosen, measured) =
            select(&candidates, default, budget, |scheme| self.time_scheme(layout, scheme, shape, &operands)).await;
        self.tuning.set(layout, chosen);
        let timed = measured.iter().any(|m| m.seconds.is_ok());
        let saved = timed.then(|| self.tuning.save(&AdapterKey::of(&info), layout, chosen));
        let origin = if timed { Origin::Measured } else { Origin::Default };
        Ok(TuneReport { layout, chosen, origin, shape, measured, saved })
    }

    /// Seconds per product of `shape` with `scheme` (see the module docs for the method).
    async fn time_scheme(&self, layout: Layout, scheme: Scheme, [m, n, k]: [u32; 3], operands: &Operands) -> Timed {
        let start = platform::now();
        let per_run = async {
            let variant = Variant::for_shape(layout, scheme, n, k);
            let pipeline = self.variant_pipeline(variant).await?;
            let bindings = operands.bindings(layout);
            let workgroups = variant.workgroups(m, n);
            let submit = async |repeats: u32| -> Result<f64, ExecError> {
                let mut program = Program::new();
                for _ in 0..repeats {
                    program.dispatch(self, &pipeline, &bindings, workgroups).await?;
                }
                let start = platform::now();
                self.execute(&program, &[], &[&operands.params]).await?;
                Ok(platform::now() - start)
            };
            submit(1).await?; // warm-up: first use of the pipeline and buffers
            let once = submit(1).await?.max(1e-6);
            let repeats = ((TARGET_SECONDS / once).ceil() as u32).clamp(1, MAX_REPEATS);
            let best = submit(repeats).await?.min(submit(repeats).await?);
            Ok(best / f64::from(repeats))
        }
        .await;
        Timed { per_run, spent: platform::now() - start }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use std::path::PathBuf;

    use hyphae_proto::frame::DeviceLimits;

    use super::*;

    fn adapter(driver: &str) -> AdapterKey {
        AdapterKey {
            name: "NVIDIA H100 80GB HBM3".into(),
            vendor: 0x10de,
            device: 0x2330,
            driver: driver.into(),
            backend: "vulkan".into(),
        }
    }

    /// A cache file of its own under the system's temporary directory.
    fn scratch_cache(test: &str) -> (TuneCache, PathBuf) {
        let dir = std::env::temp_dir().join(format!("hyphae-tune-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("nested").join("tune.json");
        (TuneCache::File(path.clone()), dir)
    }

    #[test]
    fn cache_round_trips_through_the_file() {
        let (cache, dir) = scratch_cache("round-trip");
        let tuning = Tuning::new(cache.clone());
        let (h100, scheme) = (adapter("550.54"), CANDIDATES[2]);
        assert_eq!(tuning.load().lookup(&h100, &kernels_digest(), Layout::Linear), None);
        tuning.save(&h100, Layout::Linear, scheme).unwrap();
        tuning.save(&h100, Layout::Matmul, Scheme::Registers).unwrap();

        let reread = Tuning::new(cache).load();
        assert_eq!(reread.lookup(&h100, &kernels_digest(), Layout::Linear), Some(scheme));
        assert_eq!(reread.lookup(&h100, &kernels_digest(), Layout::Matmul), Some(Scheme::Registers));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn another_adapter_driver_or_kernel_build_misses() {
        let mut file = TuneFile::default();
        let h100 = adapter("550.54");
        file.insert(&h100, "kernels-a", Layout::Linear, GPU_DEFAULT);
        let file = TuneFile::parse(&file.render());
        assert_eq!(file.lookup(&h100, "kernels-a", Layout::Linear), Some(GPU_DEFAULT));
        assert_eq!(file.lookup(&adapter("560.10"), "kernels-a", Layout::Linear), None);
        assert_eq!(
            file.lookup(&AdapterKey { backend: "dx12".into(), ..h100.clone() }, "kernels-a", Layout::Linear),
            None
        );
        assert_eq!(file.lookup(&h100, "kernels-b", Layout::Linear), None);
        assert_eq!(file.lookup(&h100, "kernels-a", Layout::Matmul), None);
    }

    #[test]
    fn a_new_kernel_build_replaces_the_adapters_stale_entries_and_keeps_others() {
        let mut file = TuneFile::default();
        let (h100, other) = (adapter("550.54"), adapter("560.10"));
        file.insert(&h100, "old", Layout::Linear, GPU_DEFAULT);
        file.insert(&h100, "old", Layout::Matmul, GPU_DEFAULT);
        file.insert(&other, "old", Layout::Linear, Scheme::Registers);
        file.insert(&h100, "new", Layout::Linear, Scheme::Registers);
        assert_eq!(file.lookup(&h100, "old", Layout::Matmul), None);
        assert_eq!(file.lookup(&h100, "new", Layout::Linear), Some(Scheme::Registers));
        assert_eq!(file.lookup(&other, "old", Layout::Linear), Some(Scheme::Registers));
        file.insert(&h100, "new", Layout::Linear, GPU_DEFAULT);
        assert_eq!(file.lookup(&h100, "new", Layout::Linear), Some(GPU_DEFAULT));
        assert_eq!(file.entries.len(), 2);
    }

    #[test]
    fn unreadable_or_foreign_cache_text_reads_as_empty() {
        let h100 = adapter("550.54");
        for text in ["", "not json", "{\"version\": 99, \"entries\": []}", "[1, 2]"] {
            assert_eq!(TuneFile::parse(text).lookup(&h100, &kernels_digest(), Layout::Linear), None, "{text}");
        }
        let mut file = TuneFile::default();
        file.insert(&h100, &kernels_digest(), Layout::Linear, GPU_DEFAULT);
        let renamed = file.render().replace(&GPU_DEFAULT.name(), "tiled-999x999x9-9x9");
        assert_eq!(TuneFile::parse(&renamed).lookup(&h100, &kernels_digest(), Layout::Linear), None);
    }

    fn timed(seconds: Result<f64, ExecError>, spent: f64) -> Timed {
        Timed { per_run: seconds, spent }
    }

    #[test]
    fn selection_picks_the_fastest_and_skips_candidates_that_fail() {
        let times = [Ok(3.0), Err(ExecError::InvalidShader(crate::ShaderError::message("refused"))), Ok(1.0), Ok(2.0)];
        let candidates = &CANDIDATES[..4];
        let (chosen, measured) = pollster::block_on(select(candidates, GPU_DEFAULT, 100.0, |scheme| {
            let index = candidates.iter().position(|&c| c == scheme).unwrap();
            let result = times[index].clone();
            async move { timed(result, 0.1) }
        }));
        assert_eq!(chosen, candidates[2]);
        assert_eq!(measured.len(), 4);
        assert!(measured[1].seconds.as_ref().is_err_and(|e| e.contains("refused")));
    }

    #[test]
    fn selection_stops_at_the_budget_and_falls_back_to_the_default() {
        let mut calls = 0;
        let (chosen, measured) = pollster::block_on(select(&CANDIDATES, Scheme::Registers, 1.0, |_| {
            calls += 1;
            async { timed(Ok(1.0), 0.6) }
        }));
        assert_eq!((calls, measured.len(), chosen), (2, 2, CANDIDATES[0]), "ties keep the earlier candidate");

        let (chosen, measured) = pollster::block_on(select(&CANDIDATES, Scheme::Registers, 1.0, |_| async {
            timed(Err(ExecError::OutOfMemory), 0.1)
        }));
        assert_eq!(chosen, Scheme::Registers);
        assert_eq!(measured.len(), CANDIDATES.len());
    }

    #[test]
    fn software_adapters_are_recognised() {
        let info = |name: &str, device_type: &str| AdapterInfo {
            name: name.into(),
            vendor: 0,
            device: 0,
            device_type: device_type.into(),
            backend: "vulkan".into(),
            driver: String::new(),
            limits: DeviceLimits::default(),
        };
        assert!(is_cpu_adapter(&info("llvmpipe (LLVM 15.0.6, 256 bits)", "cpu")));
        assert!(is_cpu_adapter(&info("SwiftShader Device (Subzero)", "other")));
        assert!(!is_cpu_adapter(&info("NVIDIA H100 80GB HBM3", "discrete_gpu")));
    }
}
