//! The shared test suite (`hyphae_shaders::testsuite`) in a real browser: headless Chromium's
//! WebGPU (SwiftShader where there is no GPU), driven by wasm-bindgen-test-runner through
//! chromedriver. It catches what naga and lavapipe let through and browsers refuse, such as a
//! `workgroupBarrier()` in non-uniform control flow. `cargo xtask test` runs it
//! (`xtask/src/browser_tests.rs` sets up the runner, Chromium's flags and the timeouts).
//!
//! The tests run in a dedicated module Web Worker, as the real browser worker does
//! (`node-wasm`), so WebGPU is exercised from the same kind of global scope. Each test opens a
//! `Gpu` of its own, as in `tests/lavapipe.rs`, so counters read by the executor checks start
//! clean. Natively this file compiles to nothing.
//!
//! Not here: `lost_device_is_reported_and_refuses_further_work` (a unit test in
//! `executor/mod.rs` that reaches the private device to destroy it).

#![cfg(target_arch = "wasm32")]

use hyphae_shaders::Gpu;
use hyphae_shaders::testsuite::executor::BarrierUniformity;
use hyphae_shaders::testsuite::{self, Failure};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_dedicated_worker);

async fn gpu() -> Gpu {
    match Gpu::new().await {
        Ok(gpu) => gpu,
        Err(error) => panic!("a WebGPU adapter (Chromium needs --enable-unsafe-webgpu): {error}"),
    }
}

fn check(result: Result<(), Failure>) {
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

#[wasm_bindgen_test]
async fn adapter_reports_browser_webgpu_and_its_limits() {
    let gpu = gpu().await;
    let info = gpu.adapter_info();
    assert_eq!(info.backend, "browser_webgpu", "{info:?}");
    assert_eq!(info.limits, gpu.limits());
    // The adapter's own limits are requested; WebGPU's defaults are the floor.
    assert!(gpu.limits().max_storage_buffer_binding_size >= 128 << 20, "{info:?}");
    assert!(gpu.limits().max_compute_invocations_per_workgroup >= 256, "{info:?}");
    assert_eq!(BarrierUniformity::of(&gpu), BarrierUniformity::Rejected);
    wasm_bindgen_test::console_log!("adapter: {info:?}");
}

#[wasm_bindgen_test]
async fn matmul_matches_reference_on_ragged_shapes() {
    check(testsuite::kernels::matmul_matches_reference_on_ragged_shapes(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn matmul_variants_agree_bitwise_and_match_reference() {
    check(testsuite::matmul::matmul_variants_agree_bitwise_and_match_reference(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn tuned_matmul_plan_matches_reference() {
    check(testsuite::matmul::tuned_matmul_plan_matches_reference(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn collatz_matches_reference() {
    check(testsuite::kernels::collatz_matches_reference(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn vector_add_matches_reference() {
    check(testsuite::kernels::vector_add_matches_reference(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn invalid_shader_is_an_error_not_a_panic() {
    check(testsuite::executor::invalid_shader_is_an_error_not_a_panic(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn device_rejected_shader_is_invalid_shader_and_not_cached() {
    check(testsuite::executor::device_rejected_shader_is_invalid_shader_and_not_cached(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn barrier_in_non_uniform_control_flow_is_rejected_where_the_backend_checks_uniformity() {
    check(
        testsuite::executor::barrier_in_non_uniform_control_flow_is_rejected_where_the_backend_checks_uniformity(
            &gpu().await,
        )
        .await,
    );
}

#[wasm_bindgen_test]
async fn bindings_not_matching_the_shader_are_typed_errors() {
    check(testsuite::executor::bindings_not_matching_the_shader_are_typed_errors(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn oversized_binding_exceeds_limits_before_allocation() {
    check(testsuite::executor::oversized_binding_exceeds_limits_before_allocation(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn outputs_come_back_in_binding_order_at_declared_size() {
    check(testsuite::executor::outputs_come_back_in_binding_order_at_declared_size(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn reused_zero_output_is_cleared() {
    check(testsuite::executor::reused_zero_output_is_cleared(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn pipeline_cache_is_hit_on_second_run() {
    check(testsuite::executor::pipeline_cache_is_hit_on_second_run(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn workgroup_memory_over_the_limit_exceeds_limits() {
    check(testsuite::executor::workgroup_memory_over_the_limit_exceeds_limits(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn matmul_bias_matches_reference_on_ragged_shapes() {
    check(testsuite::transformer::matmul_bias_matches_reference_on_ragged_shapes(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn layernorm_matches_reference() {
    check(testsuite::transformer::layernorm_matches_reference(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn gelu_matches_reference() {
    check(testsuite::transformer::gelu_matches_reference(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn softmax_matches_reference_with_masks() {
    check(testsuite::transformer::softmax_matches_reference_with_masks(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn attention_matches_reference_with_padding() {
    check(testsuite::transformer::attention_matches_reference_with_padding(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn embeddings_match_reference() {
    check(testsuite::transformer::embeddings_match_reference(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn mean_pool_matches_reference_with_padding() {
    check(testsuite::transformer::mean_pool_matches_reference_with_padding(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn l2_normalize_matches_reference_and_keeps_zero_rows() {
    check(testsuite::transformer::l2_normalize_matches_reference_and_keeps_zero_rows(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn program_chains_dispatches_with_one_readback() {
    check(testsuite::executor::program_chains_dispatches_with_one_readback(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn program_misuse_is_a_typed_error() {
    check(testsuite::executor::program_misuse_is_a_typed_error(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn sharded_model_matches_the_unsplit_reference() {
    check(testsuite::model::sharded_model_matches_the_unsplit_reference(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn every_matmul_scheme_gives_the_same_embedding_bits() {
    check(testsuite::model::every_matmul_scheme_gives_the_same_embedding_bits(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn padding_does_not_change_embeddings() {
    check(testsuite::model::padding_does_not_change_embeddings(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn loading_refuses_missing_or_misshapen_tensors() {
    check(testsuite::model::loading_refuses_missing_or_misshapen_tensors(&gpu().await).await);
}

#[wasm_bindgen_test]
async fn shard_inputs_are_checked_and_buffers_reused() {
    check(testsuite::model::shard_inputs_are_checked_and_buffers_reused(&gpu().await).await);
}
