//! Reading staging buffers back to the CPU, one function for both targets.
//!
//! `map_async` reports through a callback; the callback sends into a `futures` oneshot channel
//! (std channels block, which a browser cannot). On native nothing drives wgpu but us, so we
//! call `device.poll(PollType::wait_indefinitely())` once after requesting every map; in the
//! browser the device is polled by the page's event loop and we only await.

use futures::channel::oneshot;

use super::ExecError;

/// Maps the first `size` bytes of each `(buffer, size)` (buffers made with `MAP_READ`), copies
/// them out and unmaps. Sizes must be non-zero multiples of 4 (the executor guarantees it).
pub(crate) async fn read_buffers(
    device: &wgpu::Device,
    buffers: &[(&wgpu::Buffer, u64)],
) -> Result<Vec<Vec<u8>>, ExecError> {
    let mut pending = Vec::with_capacity(buffers.len());
    for &(buffer, size) in buffers {
        let (tx, rx) = oneshot::channel();
        buffer.slice(0..size).map_async(wgpu::MapMode::Read, move |result| {
            // The receiver is gone only if the launch was abandoned; nothing to report then.
            let _ = tx.send(result);
        });
        pending.push(rx);
    }

    #[cfg(not(target_arch = "wasm32"))]
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| ExecError::Device(format!("waiting for the gpu failed: {e}")))?;
    #[cfg(target_arch = "wasm32")]
    let _ = device;

    let mut outputs = Vec::with_capacity(buffers.len());
    let mut failure = None;
    for (rx, &(buffer, size)) in pending.into_iter().zip(buffers) {
        let mapped = match rx.await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                failure.get_or_insert(ExecError::Device(format!("mapping a readback buffer failed: {e}")));
                false
            }
            Err(oneshot::Canceled) => {
                failure.get_or_insert(ExecError::Device("a readback mapping was dropped".into()));
                false
            }
        };
        if !mapped || failure.is_some() {
            if mapped {
                buffer.unmap();
            }
            continue;
        }
        match buffer.slice(0..size).get_mapped_range() {
            Ok(view) => {
                outputs.push(view.to_vec());
                // The view must be gone before unmap, or wgpu refuses to unmap.
                drop(view);
            }
            Err(e) => {
                failure = Some(ExecError::Device(format!("reading a mapped buffer failed: {e}")));
            }
        }
        buffer.unmap();
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(outputs),
    }
}
