//! Pure checks of a launch against a device's [`DeviceLimits`]: the executor runs them before it
//! allocates anything, and the relay runs the same functions to place a task only on workers
//! that can take it. No wgpu here.

use hyphae_proto::frame::DeviceLimits;

use super::{ExecError, Launch};
use crate::validate::EntryPointInfo;

/// What a launch asks of a device, without its data or shader: all the relay keeps of a task
/// to place it only on workers that can take it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirements {
    pub workgroups: [u32; 3],
    /// Size in bytes of every binding.
    pub binding_sizes: Vec<u64>,
}

impl Requirements {
    pub fn of(launch: &Launch<'_>) -> Requirements {
        Requirements {
            workgroups: launch.workgroups,
            binding_sizes: launch.bindings.iter().map(|b| b.contents.len()).collect(),
        }
    }

    /// Checks buffer sizes, the number of storage buffers and the workgroup counts.
    pub fn check(&self, limits: &DeviceLimits) -> Result<(), ExecError> {
        let count = self.binding_sizes.len() as u64;
        let max_count = u64::from(limits.max_storage_buffers_per_shader_stage);
        if count > max_count {
            return Err(ExecError::ExceedsLimits {
                what: "storage buffers per shader stage",
                requested: count,
                limit: max_count,
            });
        }
        for &size in &self.binding_sizes {
            if size > limits.max_storage_buffer_binding_size {
                return Err(ExecError::ExceedsLimits {
                    what: "storage buffer binding size",
                    requested: size,
                    limit: limits.max_storage_buffer_binding_size,
                });
            }
            if size > limits.max_buffer_size {
                return Err(ExecError::ExceedsLimits {
                    what: "buffer size",
                    requested: size,
                    limit: limits.max_buffer_size,
                });
            }
        }
        for &groups in &self.workgroups {
            if groups > limits.max_compute_workgroups_per_dimension {
                return Err(ExecError::ExceedsLimits {
                    what: "workgroups per dimension",
                    requested: u64::from(groups),
                    limit: u64::from(limits.max_compute_workgroups_per_dimension),
                });
            }
        }
        Ok(())
    }
}

/// Checks buffer sizes, the number of storage buffers and the workgroup counts of `launch`.
/// Does not look at the shader (see [`check_workgroup`] for what needs its reflection).
pub fn check_limits(launch: &Launch<'_>, limits: &DeviceLimits) -> Result<(), ExecError> {
    Requirements::of(launch).check(limits)
}

/// Checks an entry point's workgroup (from [`mod@crate::validate`]) against the device: its
/// invocations, and the bytes of `var<workgroup>` it uses, which wgpu-core does not check itself
/// (a driver given too much may fail in ways no error scope sees). Per-axis sizes are left to
/// wgpu, which refuses them at pipeline creation.
pub fn check_workgroup(entry: &EntryPointInfo, limits: &DeviceLimits) -> Result<(), ExecError> {
    let invocations = entry.workgroup_size.iter().map(|&d| u64::from(d)).product::<u64>();
    let limit = u64::from(limits.max_compute_invocations_per_workgroup);
    if invocations > limit {
        return Err(ExecError::ExceedsLimits { what: "invocations per workgroup", requested: invocations, limit });
    }
    let limit = u64::from(limits.max_compute_workgroup_storage_size);
    if entry.workgroup_storage > limit {
        return Err(ExecError::ExceedsLimits {
            what: "workgroup storage size",
            requested: entry.workgroup_storage,
            limit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::{Contents, LaunchBinding};
    use hyphae_proto::frame::Access;

    /// WebGPU's guaranteed defaults.
    fn webgpu_defaults() -> DeviceLimits {
        DeviceLimits {
            max_buffer_size: 256 << 20,
            max_storage_buffer_binding_size: 128 << 20,
            max_storage_buffers_per_shader_stage: 8,
            max_compute_workgroups_per_dimension: 65535,
            max_compute_invocations_per_workgroup: 256,
            max_compute_workgroup_storage_size: 16 << 10,
        }
    }

    fn launch(bindings: Vec<LaunchBinding<'static>>, workgroups: [u32; 3]) -> Launch<'static> {
        Launch { shader: "", entry_point: "main", workgroups, bindings }
    }

    fn output(binding: u32, size: u64) -> LaunchBinding<'static> {
        LaunchBinding { binding, access: Access::ReadWrite, contents: Contents::Zeros(size) }
    }

    #[test]
    fn launch_within_limits_passes() {
        let ok = launch(vec![output(0, 128 << 20)], [65535, 1, 1]);
        check_limits(&ok, &webgpu_defaults()).unwrap();
    }

    #[test]
    fn oversized_binding_is_rejected() {
        let big = launch(vec![output(0, (128 << 20) + 4)], [1, 1, 1]);
        assert_eq!(
            check_limits(&big, &webgpu_defaults()),
            Err(ExecError::ExceedsLimits {
                what: "storage buffer binding size",
                requested: (128 << 20) + 4,
                limit: 128 << 20,
            })
        );
    }

    #[test]
    fn binding_over_max_buffer_size_is_rejected() {
        let limits = DeviceLimits { max_storage_buffer_binding_size: 1 << 40, ..webgpu_defaults() };
        let big = launch(vec![output(0, (256 << 20) + 4)], [1, 1, 1]);
        assert!(matches!(check_limits(&big, &limits), Err(ExecError::ExceedsLimits { what: "buffer size", .. })));
    }

    #[test]
    fn too_many_bindings_are_rejected() {
        let many = launch((0..9).map(|b| output(b, 4)).collect(), [1, 1, 1]);
        assert!(matches!(
            check_limits(&many, &webgpu_defaults()),
            Err(ExecError::ExceedsLimits { what: "storage buffers per shader stage", .. })
        ));
    }

    #[test]
    fn too_many_workgroups_in_any_dimension_are_rejected() {
        for workgroups in [[65536, 1, 1], [1, 65536, 1], [1, 1, 65536]] {
            let wide = launch(vec![output(0, 4)], workgroups);
            assert!(matches!(
                check_limits(&wide, &webgpu_defaults()),
                Err(ExecError::ExceedsLimits { what: "workgroups per dimension", .. })
            ));
        }
    }

    fn entry(workgroup_size: [u32; 3], workgroup_storage: u64) -> EntryPointInfo {
        EntryPointInfo { name: "main".into(), stage: "compute".into(), workgroup_size, workgroup_storage }
    }

    #[test]
    fn workgroup_storage_over_the_limit_is_rejected() {
        check_workgroup(&entry([1, 1, 1], 16 << 10), &webgpu_defaults()).unwrap();
        assert!(matches!(
            check_workgroup(&entry([1, 1, 1], (16 << 10) + 16), &webgpu_defaults()),
            Err(ExecError::ExceedsLimits { what: "workgroup storage size", .. })
        ));
    }

    #[test]
    fn workgroup_over_invocation_limit_is_rejected() {
        check_workgroup(&entry([16, 16, 1], 0), &webgpu_defaults()).unwrap();
        assert_eq!(
            check_workgroup(&entry([16, 16, 2], 0), &webgpu_defaults()),
            Err(ExecError::ExceedsLimits { what: "invocations per workgroup", requested: 512, limit: 256 })
        );
    }
}
