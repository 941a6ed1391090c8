//! [`Gpu`]: one wgpu device and queue, and [`Gpu::run`], which takes a [`Launch`] (WGSL, entry
//! point, workgroups, storage buffers) and returns the contents of its `read_write` buffers.
//! One code path for native (Vulkan, Metal, DX12, GL) and the browser (WebGPU); async all the
//! way, with no executor inside: native callers block on it (pollster) on a thread of their own.
//!
//! What `run` does, in order, and why:
//! 1. refuses work if the device was lost;
//! 2. checks the launch against the device limits (`limits.rs`) before allocating anything;
//! 3. checks the launch's shape (sizes, duplicate bindings) and, on a pipeline-cache miss,
//!    validates the WGSL with naga and checks every binding against the shader's declarations,
//!    so a mismatch is a typed [`ExecError::InvalidLaunch`] rather than a wgpu message;
//! 4. builds an explicit bind group layout from the launch (read → read-only storage,
//!    read_write → storage) and the pipeline inside wgpu error scopes; a captured error is an
//!    [`ExecError`], and only an error-free pipeline is cached (`cache.rs`);
//! 5. takes buffers from the pool (`pool.rs`), writes inputs, clears zero-initialised outputs
//!    (a pooled buffer holds the last launch's data), dispatches and copies outputs to staging,
//!    all inside error scopes again;
//! 6. reads the staging buffers back (`readback.rs`) and returns the buffers to the pool.
//!
//! [`Program`] (in `program.rs`) is the multi-dispatch path: buffers that stay on the GPU
//! ([`GpuBuffer`]), pipelines built once ([`Pipeline`]), bind groups made once per program, and
//! many dispatches submitted together with one readback at the end. Model shards run on it.
//!
//! wgpu is never allowed to panic: every call that can fail runs inside error scopes, and an
//! uncaptured-error handler records anything else, which fails the launch it happened in.
//! Error scopes are per thread on native, so no scope is held across an `.await`.

mod cache;
pub mod limits;
mod pool;
mod program;
mod readback;

use std::borrow::Cow;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex, MutexGuard};

use hyphae_proto::frame::{Access, AdapterInfo, DeviceLimits};

pub use crate::error::ExecError;
use crate::error::ShaderError;
use crate::matmul::TuneCache;
use crate::matmul::tune::Tuning;
use crate::validate::{self, Analysis, BindingKind};
pub use cache::CacheStats;
use cache::PipelineCache;
pub use limits::{Requirements, check_limits, check_workgroup};
pub use pool::PoolStats;
use pool::{BufferUse, Pool};
pub use program::{GpuBuffer, Pipeline, Program};

/// One compute dispatch: a shader, its entry point, how many workgroups, and its buffers (all
/// `var<storage>` in `@group(0)`).
#[derive(Clone, Debug)]
pub struct Launch<'a> {
    pub shader: &'a str,
    pub entry_point: &'a str,
    pub workgroups: [u32; 3],
    pub bindings: Vec<LaunchBinding<'a>>,
}

#[derive(Clone, Debug)]
pub struct LaunchBinding<'a> {
    pub binding: u32,
    /// Must match the shader's declaration: `Read` for `var<storage, read>`, `ReadWrite` for
    /// `var<storage, read_write>` (whose contents [`Gpu::run`] returns).
    pub access: Access,
    pub contents: Contents<'a>,
}

/// A buffer's initial contents. Its size is the binding's size: a non-zero multiple of 4.
#[derive(Clone, Copy, Debug)]
pub enum Contents<'a> {
    Bytes(&'a [u8]),
    /// This many zero bytes.
    Zeros(u64),
}

impl Contents<'_> {
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        match *self {
            Contents::Bytes(bytes) => bytes.len() as u64,
            Contents::Zeros(size) => size,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Shared ownership of what pooled [`GpuBuffer`]s point back to: `Arc` natively, where a `Gpu`
/// is shared across threads; `Rc` in the browser, where wgpu's WebGPU types are not `Send` and
/// everything runs on one thread.
#[cfg(not(target_arch = "wasm32"))]
type Shared<T> = std::sync::Arc<T>;
#[cfg(target_arch = "wasm32")]
type Shared<T> = std::rc::Rc<T>;

/// Counters of the pipeline cache and the buffer pool, for tests and the dashboard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuStats {
    pub pipelines: CacheStats,
    pub buffers: PoolStats,
}

/// A compiled pipeline with its layout and what launches must satisfy to use it.
#[derive(Clone, Debug)]
struct CachedPipeline {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    /// Per launch binding, in binding order: the least size the shader needs.
    min_sizes: Vec<(u32, Option<u64>)>,
}

/// A wgpu device ready to run launches. Built once per worker; on native it is `Send + Sync`
/// and may be shared across threads.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter: AdapterInfo,
    limits: DeviceLimits,
    cache: Mutex<PipelineCache<CachedPipeline>>,
    /// Shared with every pooled [`GpuBuffer`], which goes back here when dropped.
    pool: Shared<Mutex<Pool<wgpu::Buffer>>>,
    /// Set by the device-lost callback; once set, every launch fails with `DeviceLost`.
    lost: Arc<Mutex<Option<String>>>,
    /// The first error wgpu reported outside our error scopes, taken by the next launch.
    uncaptured: Arc<Mutex<Option<String>>>,
    /// Which matmul variant this adapter runs (`matmul/tune.rs`).
    pub(crate) tuning: Tuning,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu").field("adapter", &self.adapter).finish_non_exhaustive()
    }
}

#[cfg(not(target_arch = "wasm32"))]
const _: () = {
    // The native worker drives a `Gpu` from a dedicated thread; it must be shareable.
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Gpu>();
};

/// Which step a captured wgpu error came from decides what it means.
#[derive(Clone, Copy)]
pub(crate) enum Step {
    /// Shader module, layouts, pipeline: the device refused the shader.
    Pipeline,
    /// Buffers, bind group, commands, submit.
    Dispatch,
}

impl Gpu {
    /// Finds an adapter (honouring `WGPU_BACKEND`, `WGPU_POWER_PREF` and the other `WGPU_*`
    /// variables wgpu reads) and opens a device with the adapter's own limits, so big buffers
    /// work, and the optional WebGPU features kernels may use (`shader-f16`, `subgroups`).
    /// Matmul tuning results persist where [`TuneCache::from_env`] says.
    pub async fn new() -> Result<Gpu, ExecError> {
        Gpu::with_tune_cache(TuneCache::from_env()).await
    }

    /// [`Gpu::new`], keeping matmul tuning results in `cache` (tests and benchmarks pass
    /// [`TuneCache::Memory`] or a file of their own).
    pub async fn with_tune_cache(cache: TuneCache) -> Result<Gpu, ExecError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::from_env().unwrap_or(wgpu::PowerPreference::HighPerformance),
                ..Default::default()
            })
            .await
            .map_err(|_| ExecError::NoAdapter)?;
        let features = adapter.features() & (wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("hyphae"),
                required_features: features,
                required_limits: adapter.limits(),
                ..Default::default()
            })
            .await
            .map_err(|e| ExecError::RequestDevice(e.to_string()))?;

        let lost = Arc::new(Mutex::new(None));
        let lost_slot = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            *lock(&lost_slot) = Some(format!("{reason:?}: {message}"));
        });
        let uncaptured = Arc::new(Mutex::new(None));
        let uncaptured_slot = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            lock(&uncaptured_slot).get_or_insert_with(|| error.to_string());
        }));

        let limits = device_limits(&device.limits());
        Ok(Gpu {
            adapter: adapter_info(&adapter.get_info(), limits),
            limits,
            device,
            queue,
            cache: Mutex::new(PipelineCache::new(cache::CAPACITY)),
            pool: Shared::new(Mutex::new(Pool::default())),
            lost,
            uncaptured,
            tuning: Tuning::new(cache),
        })
    }

    /// What this GPU is, for the worker's `Hello`.
    pub fn adapter_info(&self) -> AdapterInfo {
        self.adapter.clone()
    }

    pub fn limits(&self) -> DeviceLimits {
        self.limits
    }

    /// Pipelines currently cached.
    pub fn cache_len(&self) -> usize {
        lock(&self.cache).stats().len
    }

    pub fn stats(&self) -> GpuStats {
        GpuStats { pipelines: lock(&self.cache).stats(), buffers: lock(&self.pool).stats() }
    }

    /// Whether the device was lost (this `Gpu` then refuses all work; make a new one).
    pub fn is_lost(&self) -> bool {
        lock(&self.lost).is_some()
    }

    /// Runs `launch` and returns the contents of every `ReadWrite` binding, in binding order,
    /// each exactly its declared size. Any failure is an error, never a partial or zeroed result.
    pub async fn run(&self, launch: &Launch<'_>) -> Result<Vec<Vec<u8>>, ExecError> {
        self.check_alive()?;
        check_limits(launch, &self.limits)?;
        let bindings = sorted_bindings(launch)?;
        let layout: Vec<(u32, Access)> = bindings.iter().map(|b| (b.binding, b.access)).collect();
        let pipeline = self.cached_pipeline(launch.shader, launch.entry_point, &layout).await?;
        for (binding, &(_, min_size)) in bindings.iter().zip(&pipeline.min_sizes) {
            let size = binding.contents.len();
            if let Some(min) = min_size.filter(|&min| size < min) {
                return Err(ExecError::InvalidLaunch(format!(
                    "binding {} is {size} bytes; the shader needs at least {min}",
                    binding.binding
                )));
            }
        }
        self.dispatch(launch, &bindings, &pipeline).await
    }

    fn check_alive(&self) -> Result<(), ExecError> {
        match lock(&self.lost).as_ref() {
            Some(reason) => Err(ExecError::DeviceLost(reason.clone())),
            None => Ok(()),
        }
    }

    /// The cached pipeline for this shader, entry point and `(binding, access)` layout (sorted
    /// by binding, no duplicates), or a new one compiled and checked.
    async fn cached_pipeline(
        &self,
        shader: &str,
        entry_point: &str,
        layout: &[(u32, Access)],
    ) -> Result<CachedPipeline, ExecError> {
        let key = cache::key(shader, entry_point, layout);
        if let Some(hit) = lock(&self.cache).get(&key) {
            return Ok(hit);
        }

        let analysis = validate::analyze(shader).map_err(ExecError::InvalidShader)?;
        let (index, entry) = analysis
            .info
            .entry_points
            .iter()
            .enumerate()
            .find(|(_, ep)| ep.name == entry_point)
            .ok_or_else(|| ExecError::InvalidLaunch(format!("the shader has no entry point `{entry_point}`")))?;
        if entry.stage != "compute" {
            return Err(ExecError::InvalidLaunch(format!(
                "entry point `{}` is a {} shader, not compute",
                entry.name, entry.stage
            )));
        }
        check_workgroup(entry, &self.limits)?;
        let min_sizes = match_bindings(&analysis, index, layout)?;

        let scopes = ErrorScopes::push(&self.device);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(entry_point),
            source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(shader)),
        });
        let entries: Vec<wgpu::BindGroupLayoutEntry> = layout
            .iter()
            .map(|&(binding, access)| wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: access == Access::Read },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let bind_group_layout = self.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("hyphae launch"),
            entries: &entries,
        });
        let pipeline_layout = self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("hyphae launch"),
            bind_group_layouts: &[Some(&bind_group_layout)],
            immediate_size: 0,
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry_point),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(entry_point),
            compilation_options: wgpu::PipelineCompilationOptions::default(),
            cache: None,
        });
        if let Some(error) = scopes.pop().await {
            return Err(self.classify(error, Step::Pipeline));
        }

        let cached = CachedPipeline { pipeline, layout: bind_group_layout, min_sizes };
        lock(&self.cache).insert(key, cached.clone());
        Ok(cached)
    }

    async fn dispatch(
        &self,
        launch: &Launch<'_>,
        bindings: &[&LaunchBinding<'_>],
        pipeline: &CachedPipeline,
    ) -> Result<Vec<Vec<u8>>, ExecError> {
        let scopes = ErrorScopes::push(&self.device);
        let storage: Vec<Pooled> =
            bindings.iter().map(|b| self.acquire(BufferUse::Storage, b.contents.len())).collect();
        let outputs: Vec<(usize, u64)> = bindings
            .iter()
            .enumerate()
            .filter(|(_, b)| b.access == Access::ReadWrite)
            .map(|(i, b)| (i, b.contents.len()))
            .collect();
        let staging: Vec<Pooled> = outputs.iter().map(|&(_, size)| self.acquire(BufferUse::Staging, size)).collect();

        for (binding, buffer) in bindings.iter().zip(&storage) {
            if let Contents::Bytes(bytes) = binding.contents {
                self.queue.write_buffer(&buffer.buffer, 0, bytes);
            }
        }
        let entries: Vec<wgpu::BindGroupEntry> = bindings
            .iter()
            .zip(&storage)
            .map(|(binding, buffer)| wgpu::BindGroupEntry {
                binding: binding.binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &buffer.buffer,
                    offset: 0,
                    // Bind exactly the declared size: `arrayLength` must not see the class.
                    size: NonZeroU64::new(binding.contents.len()),
                }),
            })
            .collect();
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("hyphae launch"),
            layout: &pipeline.layout,
            entries: &entries,
        });
        let mut encoder =
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("hyphae launch") });
        for (binding, buffer) in bindings.iter().zip(&storage) {
            if let Contents::Zeros(size) = binding.contents {
                // A pooled buffer holds the previous launch's data: zeros must be written.
                encoder.clear_buffer(&buffer.buffer, 0, Some(size));
            }
        }
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("hyphae launch"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            let [x, y, z] = launch.workgroups;
            pass.dispatch_workgroups(x, y, z);
        }
        for (&(index, size), target) in outputs.iter().zip(&staging) {
            encoder.copy_buffer_to_buffer(&storage[index].buffer, 0, &target.buffer, 0, size);
        }
        self.queue.submit([encoder.finish()]);
        if let Some(error) = scopes.pop().await {
            return Err(self.classify(error, Step::Dispatch));
        }

        let reads: Vec<(&wgpu::Buffer, u64)> =
            staging.iter().zip(&outputs).map(|(s, &(_, size))| (&s.buffer, size)).collect();
        let result = readback::read_buffers(&self.device, &reads).await;
        self.check_alive()?;
        if let Some(message) = lock(&self.uncaptured).take() {
            return Err(ExecError::Device(message));
        }
        let result = result?;
        self.release(storage.into_iter().chain(staging));
        Ok(result)
    }

    /// A buffer of at least `size` bytes for `use_`, from the pool or new (the caller holds
    /// error scopes, so an allocation failure is captured, not a panic).
    pub(crate) fn acquire(&self, use_: BufferUse, size: u64) -> Pooled {
        let class = pool::size_class(size, self.limits.max_buffer_size);
        if let Some(buffer) = lock(&self.pool).take(use_, class) {
            return Pooled { buffer, use_, class };
        }
        let usage = match use_ {
            BufferUse::Storage => {
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC
            }
            BufferUse::Staging => wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        };
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(match use_ {
                BufferUse::Storage => "hyphae storage",
                BufferUse::Staging => "hyphae staging",
            }),
            size: class,
            usage,
            mapped_at_creation: false,
        });
        lock(&self.pool).note_created();
        Pooled { buffer, use_, class }
    }

    /// Returns buffers of a successful launch to the pool. Buffers of a failed launch are
    /// dropped instead: after an error their state is not worth trusting.
    pub(crate) fn release(&self, buffers: impl IntoIterator<Item = Pooled>) {
        let mut pool = lock(&self.pool);
        for Pooled { buffer, use_, class } in buffers {
            if let Some(unkept) = pool.put(use_, class, buffer) {
                unkept.destroy();
            }
        }
    }

    pub(crate) fn classify(&self, error: wgpu::Error, step: Step) -> ExecError {
        // Device loss surfaces through the lost callback, which wgpu-core runs while polling.
        #[cfg(not(target_arch = "wasm32"))]
        let _ = self.device.poll(wgpu::PollType::Poll);
        if let Err(lost) = self.check_alive() {
            return lost;
        }
        match (error, step) {
            (wgpu::Error::OutOfMemory { .. }, _) => ExecError::OutOfMemory,
            (
                wgpu::Error::Validation { description, .. } | wgpu::Error::Internal { description, .. },
                Step::Pipeline,
            ) => ExecError::InvalidShader(ShaderError::message(one_line(&description))),
            (
                wgpu::Error::Validation { description, .. } | wgpu::Error::Internal { description, .. },
                Step::Dispatch,
            ) => ExecError::Device(one_line(&description)),
        }
    }
}

pub(crate) struct Pooled {
    buffer: wgpu::Buffer,
    use_: BufferUse,
    class: u64,
}

/// Validation, out-of-memory and internal error scopes, pushed together and popped together.
/// Guards are `!Send` and scopes are per thread: push and pop with no `.await` between.
pub(crate) struct ErrorScopes {
    // Declared innermost first: if a panic drops the guards unpopped, they pop in reverse order
    // of their push, as wgpu requires.
    internal: wgpu::ErrorScopeGuard,
    out_of_memory: wgpu::ErrorScopeGuard,
    validation: wgpu::ErrorScopeGuard,
}

impl ErrorScopes {
    fn push(device: &wgpu::Device) -> ErrorScopes {
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out_of_memory = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
        ErrorScopes { internal, out_of_memory, validation }
    }

    /// Pops all three now (innermost first) and resolves to the most telling captured error.
    fn pop(self) -> impl Future<Output = Option<wgpu::Error>> + wgpu::WasmNotSend {
        let internal = self.internal.pop();
        let out_of_memory = self.out_of_memory.pop();
        let validation = self.validation.pop();
        async move {
            let internal = internal.await;
            let out_of_memory = out_of_memory.await;
            let validation = validation.await;
            out_of_memory.or(validation).or(internal)
        }
    }
}

/// The launch's bindings by binding number, after checking the shape every launch must have.
fn sorted_bindings<'l, 'a>(launch: &'l Launch<'a>) -> Result<Vec<&'l LaunchBinding<'a>>, ExecError> {
    let mut bindings: Vec<&LaunchBinding> = launch.bindings.iter().collect();
    bindings.sort_by_key(|b| b.binding);
    for pair in bindings.windows(2) {
        if pair[0].binding == pair[1].binding {
            return Err(ExecError::InvalidLaunch(format!("binding {} appears twice", pair[0].binding)));
        }
    }
    for binding in &bindings {
        let size = binding.contents.len();
        if size == 0 || size % 4 != 0 {
            return Err(ExecError::InvalidLaunch(format!(
                "binding {} is {size} bytes; sizes must be non-zero multiples of 4",
                binding.binding
            )));
        }
    }
    Ok(bindings)
}

/// Checks every launch binding against the shader's `@group(0)` declarations and every binding
/// the entry point uses against the launch. Returns the least size of each launch binding.
fn match_bindings(
    analysis: &Analysis,
    entry_point: usize,
    layout: &[(u32, Access)],
) -> Result<Vec<(u32, Option<u64>)>, ExecError> {
    let declared = |group: u32, binding: u32| {
        analysis.info.bindings.iter().zip(&analysis.resources).find(|(b, _)| b.group == group && b.binding == binding)
    };
    let name = |b: &validate::ShaderBinding| match &b.name {
        Some(name) => format!(" (`{name}`)"),
        None => String::new(),
    };

    let mut min_sizes = Vec::with_capacity(layout.len());
    for &(binding, access) in layout {
        let Some((shader, resource)) = declared(0, binding) else {
            return Err(ExecError::InvalidLaunch(format!(
                "binding {binding} is not declared in @group(0) of the shader"
            )));
        };
        match shader.kind {
            BindingKind::Storage { access: declared } if declared == access => {}
            BindingKind::Storage { access: declared } => {
                return Err(ExecError::InvalidLaunch(format!(
                    "binding {binding}{} is declared {} but the launch passes it as {}",
                    name(shader),
                    access_name(declared),
                    access_name(access)
                )));
            }
            BindingKind::Uniform | BindingKind::Other => {
                return Err(ExecError::InvalidLaunch(format!(
                    "binding {binding}{} is not a storage buffer; launches bind storage buffers only",
                    name(shader)
                )));
            }
        }
        min_sizes.push((binding, resource.min_size));
    }
    for (shader, resource) in analysis.info.bindings.iter().zip(&analysis.resources) {
        if !resource.used_by.contains(&entry_point) {
            continue;
        }
        if shader.group != 0 {
            return Err(ExecError::InvalidLaunch(format!(
                "the shader uses @group({}) @binding({}){}; launches bind @group(0) only",
                shader.group,
                shader.binding,
                name(shader)
            )));
        }
        if !layout.iter().any(|&(binding, _)| binding == shader.binding) {
            return Err(ExecError::InvalidLaunch(format!(
                "the shader uses binding {}{} but the launch has no buffer for it",
                shader.binding,
                name(shader)
            )));
        }
    }
    Ok(min_sizes)
}

fn access_name(access: Access) -> &'static str {
    match access {
        Access::Read => "var<storage, read>",
        Access::ReadWrite => "var<storage, read_write>",
    }
}

fn device_limits(limits: &wgpu::Limits) -> DeviceLimits {
    DeviceLimits {
        max_buffer_size: limits.max_buffer_size,
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage,
        max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
        max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
    }
}

fn adapter_info(info: &wgpu::AdapterInfo, limits: DeviceLimits) -> AdapterInfo {
    let device_type = match info.device_type {
        wgpu::DeviceType::Cpu => "cpu",
        wgpu::DeviceType::IntegratedGpu => "integrated_gpu",
        wgpu::DeviceType::DiscreteGpu => "discrete_gpu",
        wgpu::DeviceType::VirtualGpu => "virtual_gpu",
        wgpu::DeviceType::Other => "other",
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan => "vulkan",
        wgpu::Backend::Metal => "metal",
        wgpu::Backend::Dx12 => "dx12",
        wgpu::Backend::Gl => "gl",
        wgpu::Backend::BrowserWebGpu => "browser_webgpu",
        wgpu::Backend::Noop => "noop",
    };
    let driver = match (info.driver.is_empty(), info.driver_info.is_empty()) {
        (false, false) => format!("{} ({})", info.driver, info.driver_info),
        (false, true) => info.driver.clone(),
        (true, _) => info.driver_info.clone(),
    };
    AdapterInfo {
        name: info.name.clone(),
        vendor: info.vendor,
        device: info.device,
        device_type: device_type.to_owned(),
        backend: backend.to_owned(),
        driver,
        limits,
    }
}

/// wgpu-core's descriptions span lines ("Validation Error\n\nCaused by:\n  In Device::…\n
/// cause"); a failure message on the wire reads better as one line: "In Device::…: cause".
fn one_line(description: &str) -> String {
    description
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && *line != "Caused by:" && *line != "Validation Error")
        .collect::<Vec<_>>()
        .join(": ")
}

/// Locks, ignoring poison: every critical section here leaves its data consistent, and a
/// panic elsewhere must not turn into a second one in the worker's GPU thread.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    const COPY: &str = "@group(0) @binding(0) var<storage, read> src: array<u32>;\n\
                        @group(0) @binding(1) var<storage, read_write> dst: array<u32>;\n\
                        @compute @workgroup_size(1) fn main() { dst[0] = src[0]; }";

    #[test]
    fn wgpu_descriptions_become_one_line() {
        let description = "Validation Error\n\nCaused by:\n  In Device::create_compute_pipeline, \
                           label = 'main'\n    Pipeline constant error: missing 'scale'\n";
        assert_eq!(
            one_line(description),
            "In Device::create_compute_pipeline, label = 'main': Pipeline constant error: missing 'scale'"
        );
    }

    #[test]
    fn lost_device_is_reported_and_refuses_further_work() {
        let gpu = pollster::block_on(Gpu::new()).unwrap();
        let input = 7u32.to_le_bytes();
        let launch = Launch {
            shader: COPY,
            entry_point: "main",
            workgroups: [1, 1, 1],
            bindings: vec![
                LaunchBinding { binding: 0, access: Access::Read, contents: Contents::Bytes(&input) },
                LaunchBinding { binding: 1, access: Access::ReadWrite, contents: Contents::Zeros(4) },
            ],
        };
        assert_eq!(pollster::block_on(gpu.run(&launch)).unwrap(), vec![input.to_vec()]);

        gpu.device.destroy();
        let first = pollster::block_on(gpu.run(&launch));
        assert!(matches!(first, Err(ExecError::DeviceLost(_))), "{first:?}");
        assert!(gpu.is_lost());
        let second = pollster::block_on(gpu.run(&launch));
        assert!(matches!(second, Err(ExecError::DeviceLost(_))), "{second:?}");
    }

    #[test]
    fn run_future_is_send_on_native() {
        fn assert_send<T: Send>(_: &T) {}
        let gpu = pollster::block_on(Gpu::new()).unwrap();
        let launch = Launch { shader: COPY, entry_point: "main", workgroups: [1, 1, 1], bindings: vec![] };
        let future = gpu.run(&launch);
        assert_send(&future);
        assert!(matches!(pollster::block_on(future), Err(ExecError::InvalidLaunch(_))));
    }
}
