//! Disk helpers of the fetch: streaming SHA-256, removal on drop, and the exclusive lock file.
//! Depends on std and sha2 only: never on wgpu, models or the rest of the crate.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::{STALE_LOCK, TOUCH_EVERY};

/// Read `r` to the end in 1 MiB chunks, handing each to `sink`; returns (bytes, SHA-256 hex).
pub(super) fn hash_stream(
    r: &mut dyn Read,
    mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<(u64, String)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        sink(&buf[..k])?;
        n += k as u64;
    }
    let digest = h.finalize();
    Ok((n, digest.iter().map(|b| format!("{b:02x}")).collect()))
}

/// Removes a file or directory when dropped (unless forgotten).
pub(super) struct RemoveOnDrop(pub(super) PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if self.0.is_dir() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// An exclusively created lock file, removed on drop.
pub(super) struct LockFile {
    path: PathBuf,
    file: File,
    last_touch: Mutex<Instant>,
}

impl LockFile {
    /// Create `path` exclusively, waiting while another process holds it (removing it once its
    /// time stamp is older than [`STALE_LOCK`]).
    pub(super) fn acquire(path: &Path, log: &mut dyn FnMut(&str)) -> Result<Self> {
        let mut said = false;
        loop {
            match OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(mut file) => {
                    let _ = writeln!(file, "{}", std::process::id());
                    return Ok(Self {
                        path: path.to_path_buf(),
                        file,
                        last_touch: Mutex::new(Instant::now()),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok());
                    match age {
                        Some(a) if a > STALE_LOCK => {
                            log(&format!(
                                "removing {} (untouched for {} s: its process is gone)",
                                path.display(),
                                a.as_secs()
                            ));
                            let _ = std::fs::remove_file(path);
                        }
                        _ => {
                            if !said {
                                let holder = std::fs::read_to_string(path).unwrap_or_default();
                                log(&format!(
                                    "waiting for process {} to finish fetching (lock {})",
                                    holder.trim(),
                                    path.display()
                                ));
                                said = true;
                            }
                            std::thread::sleep(Duration::from_millis(250));
                        }
                    }
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("creating lock file {}", path.display()))
                }
            }
        }
    }

    /// Refresh the time stamp (at most every few seconds) so waiters know the holder is alive.
    pub(super) fn touch(&self) {
        let mut last = self.last_touch.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= TOUCH_EVERY {
            let _ = self.file.set_modified(SystemTime::now());
            *last = Instant::now();
        }
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A fresh, empty temporary directory for one test.
#[cfg(test)]
pub(super) fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("outlier-probe-fetch-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_a_known_string() {
        let (n, d) = hash_stream(&mut &b"abc"[..], |_| Ok(())).unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            d,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_stale_lock_is_removed_and_a_live_one_waited_for() {
        let dir = temp("lock");
        let lock = dir.join(".fetch.lock");
        std::fs::write(&lock, "999999\n").unwrap();
        let old = SystemTime::now() - STALE_LOCK - Duration::from_secs(5);
        File::options()
            .write(true)
            .open(&lock)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let mut lines = Vec::new();
        let held = LockFile::acquire(&lock, &mut |l| lines.push(l.to_string())).unwrap();
        assert!(lines[0].contains("its process is gone"), "{lines:?}");
        // A second taker waits until the first lets go.
        let lock2 = lock.clone();
        let waiter = std::thread::spawn(move || {
            let mut said = Vec::new();
            let _l = LockFile::acquire(&lock2, &mut |l| said.push(l.to_string())).unwrap();
            said
        });
        std::thread::sleep(Duration::from_millis(600));
        assert!(!waiter.is_finished());
        drop(held);
        let said = waiter.join().unwrap();
        assert!(said[0].starts_with("waiting for process"), "{said:?}");
        assert!(!lock.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
