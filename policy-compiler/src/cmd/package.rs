//! `serin package`: the filter as a wasm OCI image (Istio's "compat" variant), written as an
//! OCI image layout directory and, optionally, a tarball of it. Prints the manifest digest, the
//! value of a WasmPlugin's `sha256`.

use std::path::PathBuf;

use serin_compiler::emit::oci;

use super::{EXIT_ERRORS, EXIT_OK};

#[derive(clap::Args)]
pub struct Args {
    /// The filter module.
    #[arg(long, default_value = "target/filter.wasm")]
    pub wasm: PathBuf,
    /// The OCI image layout directory to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Also write the layout as a tarball (for `skopeo copy oci-archive:FILE ...`).
    #[arg(long)]
    pub tar: Option<PathBuf>,
}

pub fn run(args: Args) -> u8 {
    let module = match std::fs::read(&args.wasm) {
        Ok(m) => m,
        Err(e) => {
            eprintln!(
                "error: cannot read `{}`: {e} (build it with `cargo xtask wasm`)",
                args.wasm.display()
            );
            return EXIT_ERRORS;
        }
    };
    if !module.starts_with(b"\0asm") {
        eprintln!("error: `{}` is not a wasm module", args.wasm.display());
        return EXIT_ERRORS;
    }
    let result = (|| {
        let img = oci::image(&module, "serin-filter")?;
        oci::write_layout(&img, &args.output)?;
        if let Some(t) = &args.tar {
            std::fs::write(t, oci::layout_tar(&img)?)?;
        }
        Ok::<_, std::io::Error>(img)
    })();
    match result {
        Ok(img) => {
            println!("{}", img.digest());
            eprintln!(
                "wrote the OCI image layout `{}`{}; push it with e.g. `skopeo copy oci:{}:latest docker://REGISTRY/serin-filter:TAG` and set the WasmPlugin's `sha256` to the digest above",
                args.output.display(),
                args.tar
                    .as_ref()
                    .map(|t| format!(" and `{}`", t.display()))
                    .unwrap_or_default(),
                args.output.display()
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: cannot write the image: {e}");
            EXIT_ERRORS
        }
    }
}
