//! Buffers on the device: storage buffers checked against the binding limit, readback buffers,
//! and copying results to the host. Depends on gpu's context only.

use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use wgpu::util::DeviceExt;

use super::{DeviceError, GpuContext, DEVICE_TIMEOUT};

impl GpuContext {
    /// Storage buffer holding `data`, checked against the binding limit.
    pub fn storage_init(&self, label: &str, data: &[u8]) -> Result<wgpu::Buffer> {
        self.check_binding(label, data.len() as u64)?;
        Ok(self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: data,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            }))
    }

    /// Zero-filled storage buffer of `bytes` bytes (at least 4).
    pub fn storage(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        self.check_binding(label, bytes)?;
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }))
    }

    /// A buffer the host can map for reading after a copy into it.
    pub fn readback(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        if bytes > self.limits.max_buffer_size {
            bail!(
                "{label}: a readback of {} MiB exceeds the adapter's max_buffer_size ({} MiB)",
                bytes >> 20,
                self.limits.max_buffer_size >> 20
            );
        }
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).next_multiple_of(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }))
    }

    /// Fail when `bytes` would not fit one storage binding (`max_binding`), naming `label`.
    pub fn check_binding(&self, label: &str, bytes: u64) -> Result<()> {
        if bytes > self.max_binding {
            bail!(
                "{label} needs {bytes} bytes ({:.1} MiB) in one storage binding, over the adapter's \
                 max_storage_buffer_binding_size of {} bytes ({:.1} MiB) on '{}'",
                bytes as f64 / 1048576.0,
                self.max_binding,
                self.max_binding as f64 / 1048576.0,
                self.info.name
            );
        }
        Ok(())
    }
    /// Map `buffers` (MAP_READ) and copy each one's first `len` f32 values out.
    pub fn read_f32(&self, buffers: &[(&wgpu::Buffer, usize)]) -> Result<Vec<Vec<f32>>> {
        let (tx, rx) = mpsc::channel();
        for (i, (b, len)) in buffers.iter().enumerate() {
            let tx = tx.clone();
            let bytes = (*len as u64 * 4).max(4);
            b.slice(0..bytes).map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send((i, r));
            });
        }
        drop(tx);
        // Another thread's poll may be the one that runs our callbacks, a little after our own
        // poll returns: wait for every callback, polling again meanwhile, up to the timeout.
        let start = std::time::Instant::now();
        let mut ok = vec![false; buffers.len()];
        let mut left = buffers.len();
        self.wait()?;
        while left > 0 {
            match rx.recv_timeout(Duration::from_millis(5)) {
                Ok((i, r)) => {
                    r.map_err(|e| {
                        anyhow!(DeviceError(format!(
                            "mapping a readback buffer failed: {e}"
                        )))
                    })?;
                    ok[i] = true;
                    left -= 1;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if start.elapsed() > DEVICE_TIMEOUT {
                        bail!(DeviceError(format!(
                            "GPU readback did not complete within {DEVICE_TIMEOUT:?} on '{}'",
                            self.info.name
                        )));
                    }
                    self.wait()?;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!(DeviceError(format!(
                        "GPU readback was dropped on '{}'",
                        self.info.name
                    )));
                }
            }
        }
        let mut out = Vec::with_capacity(buffers.len());
        for (b, len) in buffers {
            let bytes = (*len as u64 * 4).max(4);
            {
                let view = b
                    .slice(0..bytes)
                    .get_mapped_range()
                    .map_err(|e| anyhow!("reading a mapped buffer: {e:?}"))?;
                let mut v: Vec<f32> = bytemuck::cast_slice(&view[..]).to_vec();
                v.truncate(*len);
                out.push(v);
            }
            b.unmap();
        }
        Ok(out)
    }

    /// Copy the first `len` f32 values of a storage buffer to the host.
    pub fn read_storage(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        let bytes = len as u64 * 4;
        let rb = self.readback("storage readback", bytes)?;
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        enc.copy_buffer_to_buffer(buffer, 0, &rb, 0, bytes);
        self.queue.submit([enc.finish()]);
        Ok(self.read_f32(&[(&rb, len)])?.remove(0))
    }
}
