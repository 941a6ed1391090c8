//! Whether a worker can take a task at all: its device limits against the task's buffers and
//! dispatch size, by the same rule the worker's executor enforces, so the relay never sends a task
//! that would come back refused.

use hyphae_proto::frame::DeviceLimits;
use hyphae_shaders::EntryPointInfo;
use hyphae_shaders::executor::{Requirements, check_workgroup};

use crate::store::records::{JobWork, TaskBody, TaskRecord};

/// The buffers and dispatch size a task asks of a device.
pub fn requirements(job: &JobWork, task: &TaskRecord) -> Requirements {
    match (&task.body, job) {
        (TaskBody::Kernel { workgroups, bindings }, _) => {
            Requirements { workgroups: *workgroups, binding_sizes: bindings.iter().map(|b| b.size).collect() }
        }
        (TaskBody::Shard { input_size, output_size, .. }, JobWork::Shard { largest_tensor, .. }) => {
            // A shard's biggest buffers: its largest weight, its input and output, and the
            // feed-forward activations, four times the hidden states in BERT-like models.
            let activations = 4 * (*input_size).max(*output_size);
            Requirements {
                workgroups: [1, 1, 1],
                binding_sizes: vec![*largest_tensor, *input_size, *output_size, activations],
            }
        }
        (TaskBody::Shard { .. }, JobWork::Kernel { .. }) => {
            unreachable!("a job's tasks are of the job's kind (checked when the job is made)")
        }
    }
}

/// Whether a device with `limits` can run a task of these requirements (with this entry point,
/// for kernels).
pub fn fits(entry: Option<&EntryPointInfo>, requirements: &Requirements, limits: &DeviceLimits) -> bool {
    requirements.check(limits).is_ok() && entry.is_none_or(|e| check_workgroup(e, limits).is_ok())
}
