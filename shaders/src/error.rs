//! The crate's two error types: [`ShaderError`] (WGSL rejected by naga or by the device's
//! compiler, with naga's line and column when there is one) and [`ExecError`] (everything a
//! launch can fail with). Both are re-exported where they are produced, as
//! `validate::ShaderError` and `executor::ExecError`.

use hyphae_proto::frame::FailureKind;

/// WGSL that did not parse or validate. `line` and `column` are 1-based (column in bytes), as
/// naga reports them; wgpu-side compile errors (a backend compiler refusing what naga accepted)
/// carry no location.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(*.line, *.column, .message))]
pub struct ShaderError {
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub message: String,
}

fn render(line: Option<u32>, column: Option<u32>, message: &str) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!("line {line}, column {column}: {message}"),
        (Some(line), None) => format!("line {line}: {message}"),
        _ => message.to_owned(),
    }
}

impl ShaderError {
    /// An error without a source location (the device's compiler, not naga).
    pub fn message(message: impl Into<String>) -> ShaderError {
        ShaderError { line: None, column: None, message: message.into() }
    }
}

/// Why a launch (or setting up the GPU) failed. One variant per cause a caller acts on
/// differently; [`ExecError::failure_kind`] folds them into the wire's [`FailureKind`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// No adapter was found (no GPU, no driver, or WebGPU unavailable in this browser).
    #[error("no gpu adapter found")]
    NoAdapter,
    /// The adapter refused to create a device.
    #[error("requesting a device failed: {0}")]
    RequestDevice(String),
    /// The launch needs more than this device allows; checked before anything is allocated.
    #[error("{what} of {requested} exceeds the device limit of {limit}")]
    ExceedsLimits { what: &'static str, requested: u64, limit: u64 },
    /// The WGSL failed naga's validation, or the device's compiler refused it.
    #[error("invalid shader: {0}")]
    InvalidShader(ShaderError),
    /// The launch is malformed or does not fit the shader: an unknown entry point, a binding of
    /// size 0 or not a multiple of 4, a binding the shader does not declare, a shader binding
    /// without a buffer, or access/size not matching the declaration.
    #[error("invalid launch: {0}")]
    InvalidLaunch(String),
    /// wgpu reported an error while running the launch (validation or internal).
    #[error("device error: {0}")]
    Device(String),
    /// The device ran out of memory allocating buffers or the pipeline.
    #[error("device out of memory")]
    OutOfMemory,
    /// The device was lost; this `Gpu` refuses all further work.
    #[error("device lost: {0}")]
    DeviceLost(String),
}

impl ExecError {
    /// The wire's classification, sent to the relay in a `TaskFailure`.
    ///
    /// A launch that does not fit its shader is reported as `InvalidShader`: like a shader
    /// that fails to compile, it is a fault of the task, not of this worker's device.
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            ExecError::ExceedsLimits { .. } => FailureKind::ExceedsLimits,
            ExecError::InvalidShader(_) | ExecError::InvalidLaunch(_) => FailureKind::InvalidShader,
            ExecError::NoAdapter
            | ExecError::RequestDevice(_)
            | ExecError::Device(_)
            | ExecError::OutOfMemory
            | ExecError::DeviceLost(_) => FailureKind::Device,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shader_error_displays_line_and_column_first() {
        let located = ShaderError { line: Some(3), column: Some(5), message: "expected ';', found 'x'".into() };
        assert_eq!(located.to_string(), "line 3, column 5: expected ';', found 'x'");
        assert_eq!(ShaderError::message("no location").to_string(), "no location");
    }

    #[test]
    fn every_exec_error_maps_to_a_failure_kind() {
        let cases = [
            (ExecError::NoAdapter, FailureKind::Device),
            (ExecError::RequestDevice("x".into()), FailureKind::Device),
            (ExecError::ExceedsLimits { what: "buffer size", requested: 2, limit: 1 }, FailureKind::ExceedsLimits),
            (ExecError::InvalidShader(ShaderError::message("x")), FailureKind::InvalidShader),
            (ExecError::InvalidLaunch("x".into()), FailureKind::InvalidShader),
            (ExecError::Device("x".into()), FailureKind::Device),
            (ExecError::OutOfMemory, FailureKind::Device),
            (ExecError::DeviceLost("x".into()), FailureKind::Device),
        ];
        for (error, kind) in cases {
            assert_eq!(error.failure_kind(), kind, "{error}");
        }
    }
}
