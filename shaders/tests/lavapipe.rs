//! The shared test suite (`hyphae_shaders::testsuite`) on the native GPU this machine has:
//! lavapipe (Mesa's software Vulkan) in CI, whatever `WGPU_BACKEND` picks elsewhere. Each test
//! opens a `Gpu` of its own, so counters read by the executor checks are not disturbed by
//! tests running in parallel.

use hyphae_shaders::testsuite::{self, Failure};
use hyphae_shaders::{Gpu, TuneCache};

fn gpu() -> Gpu {
    pollster::block_on(Gpu::new()).expect("a native GPU adapter (lavapipe: mesa-vulkan-drivers)")
}

fn check(result: Result<(), Failure>) {
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

#[test]
fn adapter_reports_backend_type_and_limits() {
    let gpu = gpu();
    let info = gpu.adapter_info();
    assert!(!info.name.is_empty());
    assert!(["vulkan", "metal", "dx12", "gl"].contains(&info.backend.as_str()), "{info:?}");
    assert!(
        ["cpu", "integrated_gpu", "discrete_gpu", "virtual_gpu", "other"].contains(&info.device_type.as_str()),
        "{info:?}"
    );
    assert_eq!(info.limits, gpu.limits());
    // The adapter's own limits are requested, not WebGPU's defaults.
    assert!(gpu.limits().max_storage_buffer_binding_size >= 128 << 20, "{info:?}");
    assert!(gpu.limits().max_compute_invocations_per_workgroup >= 256, "{info:?}");
}

#[test]
fn matmul_matches_reference_on_ragged_shapes() {
    check(pollster::block_on(testsuite::kernels::matmul_matches_reference_on_ragged_shapes(&gpu())));
}

#[test]
fn matmul_variants_agree_bitwise_and_match_reference() {
    check(pollster::block_on(testsuite::matmul::matmul_variants_agree_bitwise_and_match_reference(&gpu())));
}

#[test]
fn tuned_matmul_plan_matches_reference() {
    check(pollster::block_on(testsuite::matmul::tuned_matmul_plan_matches_reference(&gpu())));
}

/// With a memory-only tuning cache: a measured choice must not land in this user's cache file.
#[test]
fn forced_tuning_keeps_the_fastest_candidate() {
    let gpu = pollster::block_on(Gpu::with_tune_cache(TuneCache::Memory)).expect("a native GPU adapter");
    check(pollster::block_on(testsuite::matmul::forced_tuning_keeps_the_fastest_candidate(&gpu)));
}

#[test]
fn collatz_matches_reference() {
    check(pollster::block_on(testsuite::kernels::collatz_matches_reference(&gpu())));
}

#[test]
fn vector_add_matches_reference() {
    check(pollster::block_on(testsuite::kernels::vector_add_matches_reference(&gpu())));
}

#[test]
fn invalid_shader_is_an_error_not_a_panic() {
    check(pollster::block_on(testsuite::executor::invalid_shader_is_an_error_not_a_panic(&gpu())));
}

#[test]
fn device_rejected_shader_is_invalid_shader_and_not_cached() {
    check(pollster::block_on(testsuite::executor::device_rejected_shader_is_invalid_shader_and_not_cached(&gpu())));
}

#[test]
fn bindings_not_matching_the_shader_are_typed_errors() {
    check(pollster::block_on(testsuite::executor::bindings_not_matching_the_shader_are_typed_errors(&gpu())));
}

#[test]
fn oversized_binding_exceeds_limits_before_allocation() {
    check(pollster::block_on(testsuite::executor::oversized_binding_exceeds_limits_before_allocation(&gpu())));
}

#[test]
fn outputs_come_back_in_binding_order_at_declared_size() {
    check(pollster::block_on(testsuite::executor::outputs_come_back_in_binding_order_at_declared_size(&gpu())));
}

#[test]
fn reused_zero_output_is_cleared() {
    check(pollster::block_on(testsuite::executor::reused_zero_output_is_cleared(&gpu())));
}

#[test]
fn pipeline_cache_is_hit_on_second_run() {
    check(pollster::block_on(testsuite::executor::pipeline_cache_is_hit_on_second_run(&gpu())));
}

#[test]
fn workgroup_memory_over_the_limit_exceeds_limits() {
    check(pollster::block_on(testsuite::executor::workgroup_memory_over_the_limit_exceeds_limits(&gpu())));
}

#[test]
fn matmul_bias_matches_reference_on_ragged_shapes() {
    check(pollster::block_on(testsuite::transformer::matmul_bias_matches_reference_on_ragged_shapes(&gpu())));
}

#[test]
fn layernorm_matches_reference() {
    check(pollster::block_on(testsuite::transformer::layernorm_matches_reference(&gpu())));
}

#[test]
fn gelu_matches_reference() {
    check(pollster::block_on(testsuite::transformer::gelu_matches_reference(&gpu())));
}

#[test]
fn softmax_matches_reference_with_masks() {
    check(pollster::block_on(testsuite::transformer::softmax_matches_reference_with_masks(&gpu())));
}

#[test]
fn attention_matches_reference_with_padding() {
    check(pollster::block_on(testsuite::transformer::attention_matches_reference_with_padding(&gpu())));
}

#[test]
fn embeddings_match_reference() {
    check(pollster::block_on(testsuite::transformer::embeddings_match_reference(&gpu())));
}

#[test]
fn mean_pool_matches_reference_with_padding() {
    check(pollster::block_on(testsuite::transformer::mean_pool_matches_reference_with_padding(&gpu())));
}

#[test]
fn l2_normalize_matches_reference_and_keeps_zero_rows() {
    check(pollster::block_on(testsuite::transformer::l2_normalize_matches_reference_and_keeps_zero_rows(&gpu())));
}

#[test]
fn program_chains_dispatches_with_one_readback() {
    check(pollster::block_on(testsuite::executor::program_chains_dispatches_with_one_readback(&gpu())));
}

#[test]
fn program_misuse_is_a_typed_error() {
    check(pollster::block_on(testsuite::executor::program_misuse_is_a_typed_error(&gpu())));
}

#[test]
fn sharded_model_matches_the_unsplit_reference() {
    check(pollster::block_on(testsuite::model::sharded_model_matches_the_unsplit_reference(&gpu())));
}

#[test]
fn every_matmul_scheme_gives_the_same_embedding_bits() {
    check(pollster::block_on(testsuite::model::every_matmul_scheme_gives_the_same_embedding_bits(&gpu())));
}

#[test]
fn padding_does_not_change_embeddings() {
    check(pollster::block_on(testsuite::model::padding_does_not_change_embeddings(&gpu())));
}

#[test]
fn loading_refuses_missing_or_misshapen_tensors() {
    check(pollster::block_on(testsuite::model::loading_refuses_missing_or_misshapen_tensors(&gpu())));
}

#[test]
fn shard_inputs_are_checked_and_buffers_reused() {
    check(pollster::block_on(testsuite::model::shard_inputs_are_checked_and_buffers_reused(&gpu())));
}

/// naga (and so lavapipe) accepts a barrier in non-uniform control flow; browsers refuse it.
/// Here the check asserts the shader runs and computes the right answer; `tests/browser.rs`
/// runs the same check in Chromium, where it must be `InvalidShader`.
#[test]
fn barrier_in_non_uniform_control_flow_is_rejected_where_the_backend_checks_uniformity() {
    check(pollster::block_on(
        testsuite::executor::barrier_in_non_uniform_control_flow_is_rejected_where_the_backend_checks_uniformity(&gpu()),
    ));
}
