//! CPU reference of every built-in kernel in [`crate::kernels`], one file per kernel, same name.
//! Tests compare the GPU against these; the relay uses them to answer canary tasks. Plain,
//! obviously-correct loops: speed does not matter here, agreement with the WGSL does.

pub mod collatz;
pub mod matmul;
pub mod vector_add;
