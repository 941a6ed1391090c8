//! CPU reference of every built-in kernel in [`crate::kernels`], one file per kernel, same name.
//! Tests compare the GPU against these; the relay uses them to answer canary tasks. Plain,
//! obviously-correct loops: speed does not matter here, agreement with the WGSL does. Sums
//! and dot products accumulate in f64, so a reference is at least as accurate as any kernel.

pub mod attention;
pub mod collatz;
pub mod embeddings;
pub mod gelu;
pub mod l2_normalize;
pub mod layernorm;
pub mod matmul;
pub mod matmul_bias;
pub mod mean_pool;
pub mod softmax;
pub mod vector_add;
