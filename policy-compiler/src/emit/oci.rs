//! `serin package`: the filter as a wasm OCI image in the "compat" variant Istio pulls
//! (one `application/vnd.oci.image.layer.v1.tar+gzip` layer holding `plugin.wasm`, the
//! manifest annotated `module.wasm.image/variant: compat`), written as an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/…`) and as a tarball of that layout.
//!
//! No Docker: the blobs are built here, byte for byte the same for the same module (fixed
//! mtimes, owners and modes; gzip without a timestamp), so the digest identifies the module.

use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const VARIANT_ANNOTATION: &str = "module.wasm.image/variant";
pub const MODULE_FILE: &str = "plugin.wasm";

/// `sha256:<hex>`.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// One content-addressed blob.
#[derive(Debug, Clone)]
pub struct Blob {
    pub media_type: &'static str,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn digest(&self) -> String {
        digest(&self.bytes)
    }

    fn descriptor(&self) -> serde_json::Value {
        serde_json::json!({
            "mediaType": self.media_type,
            "digest": self.digest(),
            "size": self.bytes.len(),
        })
    }
}

/// The image: its blobs and the index that names the manifest.
#[derive(Debug, Clone)]
pub struct Image {
    pub layer: Blob,
    pub config: Blob,
    pub manifest: Blob,
    pub index: Vec<u8>,
}

impl Image {
    /// The manifest digest: what a WasmPlugin's `sha256` (without `sha256:`) or `url@sha256:` names.
    pub fn digest(&self) -> String {
        self.manifest.digest()
    }

    pub fn blobs(&self) -> [&Blob; 3] {
        [&self.layer, &self.config, &self.manifest]
    }
}

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

fn tar_header(
    path: &str,
    size: u64,
    mode: u32,
    kind: tar::EntryType,
) -> std::io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)?;
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(kind);
    h.set_cksum();
    Ok(h)
}

/// The uncompressed layer: a tar holding only `plugin.wasm`.
fn layer_tar(module: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let h = tar_header(
        MODULE_FILE,
        module.len() as u64,
        0o644,
        tar::EntryType::Regular,
    )?;
    b.append(&h, module)?;
    b.into_inner()
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    // GzEncoder writes mtime 0 and no file name: the output depends on the input only.
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(bytes)?;
    gz.finish()
}

fn json(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("JSON values serialize")
}

/// Build the image for a wasm module.
pub fn image(module: &[u8], title: &str) -> std::io::Result<Image> {
    let tar = layer_tar(module)?;
    let layer = Blob {
        media_type: LAYER_MEDIA_TYPE,
        bytes: gzip(&tar)?,
    };
    let config = Blob {
        media_type: CONFIG_MEDIA_TYPE,
        bytes: json(&serde_json::json!({
            "architecture": "wasm",
            "os": "unknown",
            "config": {},
            "rootfs": { "type": "layers", "diff_ids": [digest(&tar)] },
        })),
    };
    let mut layer_desc = layer.descriptor();
    layer_desc["annotations"] =
        serde_json::json!({ "org.opencontainers.image.title": MODULE_FILE });
    let manifest = Blob {
        media_type: MANIFEST_MEDIA_TYPE,
        bytes: json(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": config.descriptor(),
            "layers": [layer_desc],
            "annotations": {
                VARIANT_ANNOTATION: "compat",
                "org.opencontainers.image.title": title,
            },
        })),
    };
    let mut manifest_desc = manifest.descriptor();
    // The tag `skopeo copy oci:DIR:latest ...` finds.
    manifest_desc["annotations"] =
        serde_json::json!({ "org.opencontainers.image.ref.name": "latest" });
    let index = json(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [manifest_desc],
    }));
    Ok(Image {
        layer,
        config,
        manifest,
        index,
    })
}

/// The layout's files, relative paths and contents, in a fixed order.
pub fn layout_files(img: &Image) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![
        ("oci-layout".to_string(), OCI_LAYOUT.to_vec()),
        ("index.json".to_string(), img.index.clone()),
    ];
    for b in img.blobs() {
        let d = b.digest();
        let hex = d.trim_start_matches("sha256:");
        files.push((format!("blobs/sha256/{hex}"), b.bytes.clone()));
    }
    files
}

/// Write the OCI image layout into `dir` (created if needed).
pub fn write_layout(img: &Image, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("blobs/sha256"))?;
    for (path, bytes) in layout_files(img) {
        std::fs::write(dir.join(path), bytes)?;
    }
    Ok(())
}

/// The layout as a tar (what `skopeo copy oci-archive:…` and `oras` read), deterministic.
pub fn layout_tar(img: &Image) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for dir in ["blobs/", "blobs/sha256/"] {
        let h = tar_header(dir, 0, 0o755, tar::EntryType::Directory)?;
        b.append(&h, std::io::empty())?;
    }
    for (path, bytes) in layout_files(img) {
        let h = tar_header(&path, bytes.len() as u64, 0o644, tar::EntryType::Regular)?;
        b.append(&h, bytes.as_slice())?;
    }
    b.into_inner()
}
