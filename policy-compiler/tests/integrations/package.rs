//! `serin package`: the OCI image layout verifies from the index down, and its one layer is a
//! tar holding exactly `plugin.wasm`, the input.

use std::io::Read;
use std::path::Path;

use serin_compiler::emit::oci;

use crate::common::*;

fn sha256(bytes: &[u8]) -> String {
    oci::digest(bytes)
}

fn blob(dir: &Path, desc: &serde_json::Value) -> Vec<u8> {
    let digest = desc["digest"].as_str().unwrap();
    let hex = digest.strip_prefix("sha256:").unwrap();
    let bytes = std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(sha256(&bytes), digest, "blob content matches its digest");
    assert_eq!(
        desc["size"].as_u64(),
        Some(bytes.len() as u64),
        "descriptor size"
    );
    bytes
}

/// Walk the layout as a registry client would; returns the manifest digest and the module.
fn verify_layout(dir: &Path) -> (String, Vec<u8>) {
    let layout: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0]["mediaType"], oci::MANIFEST_MEDIA_TYPE);
    let manifest: serde_json::Value = serde_json::from_slice(&blob(dir, &manifests[0])).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["annotations"][oci::VARIANT_ANNOTATION], "compat");
    assert_eq!(manifest["config"]["mediaType"], oci::CONFIG_MEDIA_TYPE);
    let config: serde_json::Value =
        serde_json::from_slice(&blob(dir, &manifest["config"])).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "compat: exactly one layer");
    assert_eq!(layers[0]["mediaType"], oci::LAYER_MEDIA_TYPE);
    let gz = blob(dir, &layers[0]);
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_end(&mut tar_bytes)
        .unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        sha256(&tar_bytes),
        "diff_id is the uncompressed layer's digest"
    );
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    let mut files = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().display().to_string();
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        files.push((path, content));
    }
    assert_eq!(files.len(), 1, "the layer holds one file");
    assert_eq!(files[0].0, "plugin.wasm");
    (
        manifests[0]["digest"].as_str().unwrap().to_owned(),
        files.remove(0).1,
    )
}

const MODULE: &[u8] = b"\0asm\x01\0\0\0 a stand-in module body";

#[test]
fn layout_verifies_and_holds_the_module() {
    let dir = temp_dir("oci");
    let img = oci::image(MODULE, "serin-filter").unwrap();
    oci::write_layout(&img, &dir).unwrap();
    let (digest, module) = verify_layout(&dir);
    assert_eq!(module, MODULE);
    assert_eq!(digest, img.digest());
    // Deterministic: the same module gives the same image, byte for byte.
    let again = oci::image(MODULE, "serin-filter").unwrap();
    assert_eq!(again.digest(), img.digest());
    assert_eq!(
        oci::layout_tar(&again).unwrap(),
        oci::layout_tar(&img).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tarball_is_the_layout() {
    let img = oci::image(MODULE, "serin-filter").unwrap();
    let tar_bytes = oci::layout_tar(&img).unwrap();
    let dir = temp_dir("oci-tar");
    tar::Archive::new(tar_bytes.as_slice())
        .unpack(&dir)
        .unwrap();
    let (digest, module) = verify_layout(&dir);
    assert_eq!(digest, img.digest());
    assert_eq!(module, MODULE);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cli_packages_the_filter_and_prints_its_digest() {
    let dir = temp_dir("oci-cli");
    let wasm = dir.join("filter.wasm");
    // The real module when it was built, else a stand-in: packaging does not look inside.
    let real = root().join("target/filter.wasm");
    let module = std::fs::read(&real).unwrap_or_else(|_| MODULE.to_vec());
    std::fs::write(&wasm, &module).unwrap();
    let layout = dir.join("layout");
    let tarball = dir.join("serin-filter.tar");
    let out = serin(&[
        "package",
        "--wasm",
        wasm.to_str().unwrap(),
        "-o",
        layout.to_str().unwrap(),
        "--tar",
        tarball.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let (digest, content) = verify_layout(&layout);
    assert_eq!(printed, digest);
    assert_eq!(content, module);
    let unpacked = dir.join("unpacked");
    tar::Archive::new(std::fs::File::open(&tarball).unwrap())
        .unpack(&unpacked)
        .unwrap();
    assert_eq!(verify_layout(&unpacked).0, digest);
    // The printed digest is what `serin emit istio --sha256` takes.
    let istio = serin(&[
        "emit",
        "istio",
        "examples/fraud-model.toml",
        "--sha256",
        &printed,
    ]);
    assert_eq!(
        istio.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&istio.stderr)
    );

    let not_wasm = dir.join("not.wasm");
    std::fs::write(&not_wasm, b"hello").unwrap();
    let bad = serin(&[
        "package",
        "--wasm",
        not_wasm.to_str().unwrap(),
        "-o",
        layout.to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}
