//! Programs of several dispatches over buffers that stay on the GPU, as the wgpu examples teach
//! (`repeated_compute`): build pipelines once ([`Gpu::pipeline`]), allocate buffers once
//! ([`Gpu::buffer`], [`Gpu::upload`]), make every bind group once when the program is recorded
//! ([`Program::dispatch`]), then run it as often as needed with [`Gpu::execute`]: input writes,
//! every dispatch in one compute pass, one submit, and one readback of the buffers asked for.
//! Model shards (`crate::model`) are programs; a single [`super::Launch`] still goes through
//! [`Gpu::run`].
//!
//! The promises of `run` hold here too: shapes are checked in Rust before wgpu sees them
//! (layouts, sizes, limits), every wgpu call that can fail runs inside error scopes, and a
//! failure is an [`ExecError`], never a panic or a zeroed buffer.
//!
//! Ownership: a [`GpuBuffer`] is a shared handle. A program keeps a handle to every buffer it
//! binds, so a buffer goes back to the pool (pooled buffers do, when the last handle is dropped)
//! only once no program can write it any more. Dispatches within one compute pass are ordered:
//! a dispatch sees everything the previous ones wrote (WebGPU synchronises storage buffers
//! between dispatches).

use std::num::NonZeroU64;
use std::sync::{Arc, Mutex};

use hyphae_proto::frame::Access;

use super::pool::{BufferUse, Pool};
use super::{CachedPipeline, ErrorScopes, ExecError, Gpu, Shared, Step, lock};
use crate::kernels::Kernel;

/// A storage buffer on the GPU (`STORAGE | COPY_DST | COPY_SRC`), `size` bytes as bound and
/// read back. Cloning shares the buffer.
#[derive(Clone, Debug)]
pub struct GpuBuffer {
    inner: Shared<BufferInner>,
}

#[derive(Debug)]
struct BufferInner {
    buffer: wgpu::Buffer,
    size: u64,
    /// Where a pooled buffer goes back when its last handle is dropped; `None` for uploads,
    /// which are allocated at their exact size and freed.
    home: Option<Home>,
}

struct Home {
    pool: Shared<Mutex<Pool<wgpu::Buffer>>>,
    class: u64,
    lost: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Home {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Home").field("class", &self.class).finish_non_exhaustive()
    }
}

impl Drop for BufferInner {
    fn drop(&mut self) {
        let Some(home) = self.home.take() else { return };
        // A lost device's buffers are worth nothing; drop them with it.
        if lock(&home.lost).is_some() {
            return;
        }
        if let Some(unkept) = lock(&home.pool).put(BufferUse::Storage, home.class, self.buffer.clone()) {
            unkept.destroy();
        }
    }
}

impl GpuBuffer {
    /// Size in bytes: what is bound (and what `arrayLength` sees) and what is read back.
    pub fn size(&self) -> u64 {
        self.inner.size
    }

    fn buffer(&self) -> &wgpu::Buffer {
        &self.inner.buffer
    }
}

#[cfg(not(target_arch = "wasm32"))]
const _: () = {
    // Like `Gpu`, everything a program holds may cross to the worker's GPU thread.
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GpuBuffer>();
    assert_send_sync::<Pipeline>();
    assert_send_sync::<Program>();
};

/// A compiled compute pipeline and the `(binding, access)` layout every dispatch of it binds.
#[derive(Clone, Debug)]
pub struct Pipeline {
    cached: CachedPipeline,
    layout: Vec<(u32, Access)>,
    entry_point: String,
}

impl Pipeline {
    /// `(binding, access)` in binding order.
    pub fn layout(&self) -> &[(u32, Access)] {
        &self.layout
    }
}

/// Dispatches recorded with their bind groups, run by [`Gpu::execute`] in order, in one
/// compute pass. Holds a handle to every buffer it binds.
#[derive(Debug, Default)]
pub struct Program {
    steps: Vec<ProgramStep>,
}

#[derive(Debug)]
struct ProgramStep {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
    _buffers: Vec<GpuBuffer>,
}

impl Program {
    pub fn new() -> Program {
        Program::default()
    }

    /// Dispatches recorded so far.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Appends a dispatch of `pipeline` over `workgroups`, binding `buffers` as
    /// `(binding, buffer)`: exactly the pipeline's bindings, each at least the size the shader
    /// needs. The bind group is made now, once; the same buffer may be bound more than once
    /// (read-only), as WebGPU allows.
    pub async fn dispatch(
        &mut self,
        gpu: &Gpu,
        pipeline: &Pipeline,
        buffers: &[(u32, &GpuBuffer)],
        workgroups: [u32; 3],
    ) -> Result<(), ExecError> {
        gpu.check_alive()?;
        let limit = gpu.limits.max_compute_workgroups_per_dimension;
        if let Some(&groups) = workgroups.iter().find(|&&g| g > limit) {
            return Err(ExecError::ExceedsLimits {
                what: "workgroups per dimension",
                requested: u64::from(groups),
                limit: u64::from(limit),
            });
        }
        let mut sorted: Vec<(u32, &GpuBuffer)> = buffers.to_vec();
        sorted.sort_by_key(|&(binding, _)| binding);
        let bound: Vec<u32> = sorted.iter().map(|&(binding, _)| binding).collect();
        let wanted: Vec<u32> = pipeline.layout.iter().map(|&(binding, _)| binding).collect();
        if bound != wanted {
            return Err(ExecError::InvalidLaunch(format!(
                "`{}` binds {wanted:?}; the dispatch passes {bound:?}",
                pipeline.entry_point
            )));
        }
        for (&(binding, buffer), &(_, min_size)) in sorted.iter().zip(&pipeline.cached.min_sizes) {
            if let Some(min) = min_size.filter(|&min| buffer.size() < min) {
                return Err(ExecError::InvalidLaunch(format!(
                    "binding {binding} of `{}` is {} bytes; the shader needs at least {min}",
                    pipeline.entry_point,
                    buffer.size()
                )));
            }
        }

        let entries: Vec<wgpu::BindGroupEntry> = sorted
            .iter()
            .map(|&(binding, buffer)| wgpu::BindGroupEntry {
                binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: buffer.buffer(),
                    offset: 0,
                    size: NonZeroU64::new(buffer.size()),
                }),
            })
            .collect();
        let scopes = ErrorScopes::push(&gpu.device);
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&pipeline.entry_point),
            layout: &pipeline.cached.layout,
            entries: &entries,
        });
        if let Some(error) = scopes.pop().await {
            return Err(gpu.classify(error, Step::Dispatch));
        }
        self.steps.push(ProgramStep {
            pipeline: pipeline.cached.pipeline.clone(),
            bind_group,
            workgroups,
            _buffers: sorted.iter().map(|&(_, buffer)| buffer.clone()).collect(),
        });
        Ok(())
    }
}

impl Gpu {
    /// The pipeline for `shader`'s `entry_point` with this `(binding, access)` layout, from the
    /// cache or compiled now (naga first, then the device, in error scopes), exactly as
    /// [`Gpu::run`] builds its own.
    pub async fn pipeline(
        &self,
        shader: &str,
        entry_point: &str,
        layout: &[(u32, Access)],
    ) -> Result<Pipeline, ExecError> {
        self.check_alive()?;
        let mut layout = layout.to_vec();
        layout.sort_by_key(|&(binding, _)| binding);
        if let Some(pair) = layout.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(ExecError::InvalidLaunch(format!("binding {} appears twice", pair[0].0)));
        }
        let count = layout.len() as u64;
        let limit = u64::from(self.limits.max_storage_buffers_per_shader_stage);
        if count > limit {
            return Err(ExecError::ExceedsLimits { what: "storage buffers per shader stage", requested: count, limit });
        }
        let cached = self.cached_pipeline(shader, entry_point, &layout).await?;
        Ok(Pipeline { cached, layout, entry_point: entry_point.to_owned() })
    }

    /// The pipeline of a built-in kernel, with the layout its registry entry declares.
    pub async fn kernel_pipeline(&self, kernel: &Kernel) -> Result<Pipeline, ExecError> {
        let layout: Vec<(u32, Access)> = kernel.bindings.iter().map(|b| (b.binding, b.access)).collect();
        self.pipeline(kernel.source, kernel.entry_point, &layout).await
    }

    /// A storage buffer of `size` bytes (a non-zero multiple of 4) from the pool, returned to it
    /// when its last handle is dropped. Its contents are unspecified: whatever reads it must
    /// first be written by [`Gpu::execute`]'s writes or by an earlier dispatch.
    pub async fn buffer(&self, size: u64) -> Result<GpuBuffer, ExecError> {
        self.check_buffer_size(size)?;
        let scopes = ErrorScopes::push(&self.device);
        let pooled = self.acquire(BufferUse::Storage, size);
        if let Some(error) = scopes.pop().await {
            return Err(self.classify(error, Step::Dispatch));
        }
        let home = Home { pool: Shared::clone(&self.pool), class: pooled.class, lost: Arc::clone(&self.lost) };
        Ok(GpuBuffer { inner: Shared::new(BufferInner { buffer: pooled.buffer, size, home: Some(home) }) })
    }

    /// A storage buffer holding `bytes` (a non-zero multiple of 4), allocated at exactly that
    /// size outside the pool: for data that stays as long as its owner, such as weights.
    pub async fn upload(&self, bytes: &[u8]) -> Result<GpuBuffer, ExecError> {
        let size = bytes.len() as u64;
        self.check_buffer_size(size)?;
        let scopes = ErrorScopes::push(&self.device);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("hyphae upload"),
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        self.queue.write_buffer(&buffer, 0, bytes);
        if let Some(error) = scopes.pop().await {
            return Err(self.classify(error, Step::Dispatch));
        }
        Ok(GpuBuffer { inner: Shared::new(BufferInner { buffer, size, home: None }) })
    }

    fn check_buffer_size(&self, size: u64) -> Result<(), ExecError> {
        if size == 0 || !size.is_multiple_of(4) {
            return Err(ExecError::InvalidLaunch(format!(
                "a buffer of {size} bytes; sizes must be non-zero multiples of 4"
            )));
        }
        for (what, limit) in [
            ("storage buffer binding size", self.limits.max_storage_buffer_binding_size),
            ("buffer size", self.limits.max_buffer_size),
        ] {
            if size > limit {
                return Err(ExecError::ExceedsLimits { what, requested: size, limit });
            }
        }
        Ok(())
    }

    /// Runs `program`: writes each `(buffer, bytes)` of `writes` at the start of its buffer,
    /// then every dispatch in order in one compute pass, then copies each of `reads` to a
    /// staging buffer, all in one submit; returns the contents of `reads`, in order, each
    /// exactly its size. Any failure is an error, never a partial or zeroed result.
    pub async fn execute(
        &self,
        program: &Program,
        writes: &[(&GpuBuffer, &[u8])],
        reads: &[&GpuBuffer],
    ) -> Result<Vec<Vec<u8>>, ExecError> {
        self.check_alive()?;
        for (index, &(buffer, bytes)) in writes.iter().enumerate() {
            let size = bytes.len() as u64;
            if size == 0 || !size.is_multiple_of(4) || size > buffer.size() {
                return Err(ExecError::InvalidLaunch(format!(
                    "write {index} is {size} bytes into a buffer of {}; writes must be non-zero multiples \
                     of 4 that fit",
                    buffer.size()
                )));
            }
        }

        let scopes = ErrorScopes::push(&self.device);
        let staging: Vec<super::Pooled> =
            reads.iter().map(|buffer| self.acquire(BufferUse::Staging, buffer.size())).collect();
        for &(buffer, bytes) in writes {
            self.queue.write_buffer(buffer.buffer(), 0, bytes);
        }
        let mut encoder =
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("hyphae program") });
        if !program.steps.is_empty() {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("hyphae program"),
                timestamp_writes: None,
            });
            for step in &program.steps {
                pass.set_pipeline(&step.pipeline);
                pass.set_bind_group(0, &step.bind_group, &[]);
                let [x, y, z] = step.workgroups;
                pass.dispatch_workgroups(x, y, z);
            }
        }
        for (buffer, target) in reads.iter().zip(&staging) {
            encoder.copy_buffer_to_buffer(buffer.buffer(), 0, &target.buffer, 0, buffer.size());
        }
        self.queue.submit([encoder.finish()]);
        if let Some(error) = scopes.pop().await {
            return Err(self.classify(error, Step::Dispatch));
        }

        let targets: Vec<(&wgpu::Buffer, u64)> =
            staging.iter().zip(reads).map(|(s, buffer)| (&s.buffer, buffer.size())).collect();
        let result = super::readback::read_buffers(&self.device, &targets).await;
        self.check_alive()?;
        if let Some(message) = lock(&self.uncaptured).take() {
            return Err(ExecError::Device(message));
        }
        let result = result?;
        self.release(staging);
        Ok(result)
    }
}
