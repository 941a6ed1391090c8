//! WGSL kernels, CPU references and the wgpu executor (being written).
