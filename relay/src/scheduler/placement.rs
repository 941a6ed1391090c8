//! Whether a worker can take a task at all: its device limits against the task's buffers and
//! dispatch size, by the same rule the worker's executor enforces, so the relay never sends a task
//! that would come back refused.

use hyphae_proto::frame::DeviceLimits;
use hyphae_shaders::EntryPointInfo;
use hyphae_shaders::executor::{Requirements, check_workgroup};

use crate::store::records::TaskRecord;

pub fn requirements(task: &TaskRecord) -> Requirements {
    Requirements { workgroups: task.workgroups, binding_sizes: task.bindings.iter().map(|b| b.size).collect() }
}

/// Whether a device with `limits` can run a task of these requirements with this entry point.
pub fn fits(entry: &EntryPointInfo, requirements: &Requirements, limits: &DeviceLimits) -> bool {
    requirements.check(limits).is_ok() && check_workgroup(entry, limits).is_ok()
}
