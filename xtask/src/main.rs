//! Build driver for Concord: the wasm frontend, `wasm-bindgen`, `wasm-opt`, the CSS and public
//! files, then the server binary that embeds them. It only runs tools already installed (see
//! `scripts/setup.sh`); nothing is downloaded.
//!
//! The site (target/site) is laid out for the server's caching: the js glue, the wasm and the
//! stylesheet sit under `pkg/` with a hash of their contents in their names (cached for a
//! year as immutable) next to brotli and gzip copies made here, once per build, so the server
//! never compresses; `site.json` names them for the page shell.
//!
//! `cargo xtask site [--release]`   build target/site (the browser bundle)
//! `cargo xtask build [--release]`  the site, then the `concord` binary (release: with the
//!                                  default encoder compiled in, feature `embedded-model`)
//!
//! The wasm build uses an installed rustup `wasm32-unknown-unknown` target when there is one
//! (an ordinary laptop); otherwise Debian's `rustc-web` at /usr/bin with `-Zbuild-std`, which is
//! what works on machines where rustup cannot download targets. `CONCORD_WASM_TOOLCHAIN=debian`
//! or `=rustup` forces the choice.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

const TARGET: &str = "wasm32-unknown-unknown";
const OUTPUT_NAME: &str = "concord";
/// Names the content-hashed bundle and stylesheet for the server (`server/src/assets.rs`).
const SITE_MANIFEST: &str = "site.json";
/// The model release binaries embed (`crates/ml/src/embedded.rs` names the same files).
const EMBEDDED_MODEL_DIR: &str = "models/all-MiniLM-L6-v2";
/// Its weights rounded to f16, as the binary embeds them.
const EMBEDDED_WEIGHTS: &str = "target/embedded-model/all-MiniLM-L6-v2/model-f16.safetensors";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let release = args.iter().any(|a| a == "--release");
    // The models on the first CUDA GPU (needs the CUDA toolkit).
    let cuda = args.iter().any(|a| a == "--cuda");
    let root = workspace_root()?;
    match args.first().map(String::as_str) {
        Some("site") => build_site(&root, release),
        Some("build") => {
            build_site(&root, release)?;
            build_server(&root, release, cuda)
        }
        _ => bail!("usage: cargo xtask (site|build) [--release] [--cuda]"),
    }
}

fn workspace_root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .context("xtask has no parent directory")
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn rustup_has_wasm_target() -> bool {
    output(Command::new("rustup").args(["target", "list", "--installed"]))
        .is_some_and(|list| list.lines().any(|l| l.trim() == TARGET))
}

/// The version of a package in Cargo.lock.
fn locked_version(root: &Path, package: &str) -> Result<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{package}\"") {
            if let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = \"")) {
                return Ok(v.trim_end_matches('"').to_string());
            }
        }
    }
    bail!("{package} is not in Cargo.lock")
}

fn build_wasm(root: &Path, release: bool) -> Result<PathBuf> {
    let profile = if release { "wasm-release" } else { "dev" };
    let choice = std::env::var("CONCORD_WASM_TOOLCHAIN").unwrap_or_default();
    let use_rustup = match choice.as_str() {
        "rustup" => true,
        "debian" => false,
        _ => rustup_has_wasm_target(),
    };
    let mut cmd;
    if use_rustup {
        cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.arg("build");
    } else {
        if !Path::new("/usr/bin/rustc").exists() || !Path::new("/usr/bin/cargo").exists() {
            bail!("no wasm32 toolchain: install a rustup wasm32-unknown-unknown target, or Debian's rustc-web cargo-web rust-web-src lld-19 (scripts/setup.sh does)");
        }
        cmd = Command::new("/usr/bin/cargo");
        // Debian's toolchain has no prebuilt std for wasm32: build it (for the wasm target only,
        // never in [unstable], which would rebuild std for the server too).
        // Debian's rustc-web links wasm with lld-19's wasm-ld (a rustup target brings rust-lld).
        cmd.env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", "wasm-ld-19")
            .env("RUSTC", "/usr/bin/rustc")
            .env("RUSTDOC", "/usr/bin/rustdoc")
            .env("RUSTC_BOOTSTRAP", "1")
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO")
            .arg("build")
            .arg("-Zbuild-std=std,panic_abort");
    }
    cmd.current_dir(root)
        .env("RUSTFLAGS", "--cfg getrandom_backend=\"wasm_js\"")
        .args([
            "-p",
            "concord-frontend",
            "--lib",
            "--target",
            TARGET,
            "--profile",
            profile,
        ]);
    run(&mut cmd)?;
    let dir = if profile == "dev" { "debug" } else { profile };
    Ok(root
        .join("target")
        .join(TARGET)
        .join(dir)
        .join("concord_frontend.wasm"))
}

fn build_site(root: &Path, release: bool) -> Result<()> {
    let wasm = build_wasm(root, release)?;
    // wasm-bindgen writes into `bindgen/`; the finished site is assembled in `site/` and copied
    // into target/site file by file only where the bytes differ: the server embeds target/site
    // and cargo rebuilds it when a file's mtime changes, so an unchanged site must keep its
    // mtimes.
    let staging = root.join("target/site-staging");
    let bindgen = staging.join("bindgen");
    let site = root.join("target/site");
    if bindgen.exists() {
        std::fs::remove_dir_all(&bindgen)?;
    }
    std::fs::create_dir_all(&bindgen)?;

    let wanted = locked_version(root, "wasm-bindgen")?;
    let have = output(Command::new("wasm-bindgen").arg("--version")).unwrap_or_default();
    if have.split_whitespace().nth(1) != Some(wanted.as_str()) {
        bail!(
            "wasm-bindgen CLI {wanted} is needed (found {:?}): cargo install wasm-bindgen-cli --version {wanted} --no-default-features",
            have.trim()
        );
    }
    run(Command::new("wasm-bindgen")
        .args([
            "--target",
            "web",
            "--no-typescript",
            "--out-name",
            OUTPUT_NAME,
            "--out-dir",
        ])
        .arg(&bindgen)
        .arg(&wasm))?;
    if bindgen.join("snippets").exists() {
        // Snippets are imported by the glue under their own names, which carry no content
        // hash: they could not be cached as immutable like everything else under pkg/.
        bail!("the frontend has wasm-bindgen snippets (inline JS): the site layout has no content-hashed place for them yet");
    }

    let bundle = bindgen.join(format!("{OUTPUT_NAME}_bg.wasm"));
    if release {
        wasm_opt(root, &staging, &bundle)?;
    }

    let js = std::fs::read(bindgen.join(format!("{OUTPUT_NAME}.js")))?;
    let wasm = std::fs::read(&bundle)?;
    let css = std::fs::read(root.join("style/concord.css")).context("reading style/concord.css")?;
    // The glue and the wasm only work as a pair, and Leptos derives both names from one output
    // name: one hash over both names them.
    let stem = format!("{OUTPUT_NAME}-{}", content_hash(&[&js, &wasm]));
    let stylesheet = format!("pkg/style-{}.css", content_hash(&[&css]));
    let hashed = [
        (format!("pkg/{stem}.js"), js),
        (format!("pkg/{stem}_bg.wasm"), wasm),
        (stylesheet.clone(), css),
    ];

    // Per profile: a dev build compresses faster and worse, and must not hand its copy of a
    // file both profiles share (the stylesheet) to a release build.
    let assembled = staging.join(if release { "site-release" } else { "site-dev" });
    let mut files = BTreeMap::new();
    for (name, bytes) in &hashed {
        files.insert(name.clone(), bytes.clone());
        // A hashed name fixes the contents, so a compressed copy from an earlier build is
        // still right: brotli at its best setting takes seconds on a dev bundle.
        for (ext, compress) in [
            ("br", brotli as fn(&[u8], bool) -> Result<Vec<u8>>),
            ("gz", gzip),
        ] {
            let compressed_name = format!("{name}.{ext}");
            let earlier = assembled.join(&compressed_name);
            let compressed = match std::fs::read(&earlier) {
                Ok(bytes) => bytes,
                Err(_) => {
                    let started = std::time::Instant::now();
                    let compressed = compress(bytes, release)?;
                    eprintln!(
                        "xtask: compressed {compressed_name} in {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                    compressed
                }
            };
            files.insert(compressed_name, compressed);
        }
    }
    for entry in std::fs::read_dir(root.join("public")).context("reading public/")? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let name = entry
                .file_name()
                .into_string()
                .map_err(|n| anyhow::anyhow!("public/{n:?} is not UTF-8"))?;
            files.insert(name, std::fs::read(entry.path())?);
        }
    }
    files.insert(
        SITE_MANIFEST.to_string(),
        format!("{{\n  \"bundle\": \"{stem}\",\n  \"stylesheet\": \"{stylesheet}\"\n}}\n")
            .into_bytes(),
    );
    write_tree(&assembled, &files)?;
    let changed = write_tree(&site, &files)?;
    if changed {
        // A new file is only seen by rust-embed when assets.rs compiles again.
        let assets = root.join("server/src/assets.rs");
        std::fs::File::options()
            .write(true)
            .open(&assets)?
            .set_modified(std::time::SystemTime::now())?;
    }
    print_sizes(&hashed, &files);
    eprintln!(
        "xtask: site ready in {} ({})",
        site.display(),
        if changed { "updated" } else { "unchanged" }
    );
    Ok(())
}

/// Writes the embedded model's weights rounded to f16 (half the size of f32: 45 MB less in
/// the binary; the model still computes in f32). `cargo bench -p concord-ml --bench
/// f16_weights` measures what it costs: on 200 tweets and 200 emails every embedding stayed
/// within cosine 0.99999 of the f32 one (issue 10 allows f16 only above 0.9999). Rewritten
/// only when the bytes differ, so an unchanged model does not rebuild the crate embedding it.
fn write_embedded_weights(root: &Path) -> Result<()> {
    use safetensors::tensor::TensorView;
    use safetensors::{Dtype, SafeTensors};
    let source = root.join(EMBEDDED_MODEL_DIR).join("model.safetensors");
    let bytes = std::fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
    let tensors = SafeTensors::deserialize(&bytes)
        .with_context(|| format!("reading {}", source.display()))?;
    let mut converted = Vec::new();
    for (name, view) in tensors.tensors() {
        let (dtype, data) = match view.dtype() {
            Dtype::F32 => {
                let mut half = Vec::with_capacity(view.data().len() / 2);
                for chunk in view.data().chunks_exact(4) {
                    let value = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                    half.extend_from_slice(&half::f16::from_f32(value).to_le_bytes());
                }
                (Dtype::F16, half)
            }
            other => (other, view.data().to_vec()),
        };
        converted.push((name, dtype, view.shape().to_vec(), data));
    }
    let mut views = Vec::with_capacity(converted.len());
    for (name, dtype, shape, data) in &converted {
        views.push((name.as_str(), TensorView::new(*dtype, shape.clone(), data)?));
    }
    let out = safetensors::serialize(views, None)?;
    let mut files = BTreeMap::new();
    let target = root.join(EMBEDDED_WEIGHTS);
    let dir = target.parent().context("embedded weights have no folder")?;
    let name = target
        .file_name()
        .context("embedded weights have no file name")?
        .to_string_lossy()
        .into_owned();
    files.insert(name, out);
    write_tree(dir, &files)?;
    Ok(())
}

/// Runs wasm-opt on `bundle` in place, reusing its last output for the same input (wasm-opt
/// takes most of a warm release build).
fn wasm_opt(root: &Path, staging: &Path, bundle: &Path) -> Result<()> {
    let wasm_opt = root.join("end2end/node_modules/.bin/wasm-opt");
    if !wasm_opt.exists() {
        bail!(
            "wasm-opt not found at {}: run `npm ci` in end2end/ (scripts/setup.sh does)",
            wasm_opt.display()
        );
    }
    let cache_in = staging.join("wasm-opt.in");
    let cache_out = staging.join("wasm-opt.out");
    let input = std::fs::read(bundle)?;
    if std::fs::read(&cache_in).ok().as_deref() == Some(input.as_slice()) && cache_out.exists() {
        std::fs::copy(&cache_out, bundle)?;
        return Ok(());
    }
    run(Command::new(&wasm_opt)
        .args([
            "-Oz",
            "--enable-bulk-memory",
            "--enable-nontrapping-float-to-int",
            "--enable-sign-ext",
            "--enable-mutable-globals",
            "--enable-reference-types",
            "--enable-multivalue",
            "-o",
        ])
        .arg(bundle)
        .arg(bundle))?;
    std::fs::write(&cache_in, &input)?;
    std::fs::copy(bundle, &cache_out)?;
    Ok(())
}

/// The first 16 hex digits of the SHA-256 of `parts` in order: 64 bits name a file's
/// contents without a collision between builds.
fn content_hash(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hex::encode(hasher.finalize())[..16].to_string()
}

/// Brotli with the largest window browsers accept (16 MiB): at its best setting for a release
/// bundle; a dev bundle (tens of MB of debug wasm, rebuilt often, never deployed) gets a
/// setting a hundred times faster.
fn brotli(bytes: &[u8], release: bool) -> Result<Vec<u8>> {
    let params = brotli::enc::BrotliEncoderParams {
        quality: if release { 11 } else { 5 },
        lgwin: 24,
        size_hint: bytes.len(),
        ..Default::default()
    };
    let mut out = Vec::new();
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params).context("brotli")?;
    Ok(out)
}

/// Gzip, for clients without brotli: best for a release bundle, the default level for a dev one.
fn gzip(bytes: &[u8], release: bool) -> Result<Vec<u8>> {
    let level = if release {
        flate2::Compression::best()
    } else {
        flate2::Compression::default()
    };
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

/// What a first visit downloads: each hashed asset raw and compressed, and the total with
/// brotli (the HTML comes on top; `cargo bench -p concord-tests --bench asset_sizes` measures
/// it through the server).
fn print_sizes(hashed: &[(String, Vec<u8>)], files: &BTreeMap<String, Vec<u8>>) {
    let size = |name: &str| files.get(name).map_or(0, Vec::len);
    eprintln!(
        "xtask: {:<44} {:>10} {:>10} {:>10}",
        "asset", "raw", "gzip", "brotli"
    );
    let mut total = 0;
    for (name, bytes) in hashed {
        let br = size(&format!("{name}.br"));
        total += br;
        eprintln!(
            "xtask: {name:<44} {:>10} {:>10} {br:>10}",
            bytes.len(),
            size(&format!("{name}.gz"))
        );
    }
    eprintln!("xtask: js + wasm + css with brotli: {total} bytes");
}

/// Makes the folder `to` hold exactly `files` (relative path → bytes): writes each file whose
/// bytes differ (through a temporary file and a rename, so a reader never sees half a file)
/// and removes every other file. True if anything changed.
fn write_tree(to: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<bool> {
    let mut changed = false;
    for (name, bytes) in files {
        let target = to.join(name);
        if std::fs::read(&target).ok().as_deref() == Some(bytes.as_slice()) {
            continue;
        }
        let dir = target.parent().context("a site file has no folder")?;
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(
            ".{}.tmp",
            target
                .file_name()
                .map_or_else(Default::default, |n| n.to_string_lossy())
        ));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &target)?;
        changed = true;
    }
    changed |= remove_others(to, to, files)?;
    Ok(changed)
}

/// Removes the files under `dir` that `files` (paths relative to `root`) does not name, and
/// folders left empty. True if it removed any.
fn remove_others(root: &Path, dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<bool> {
    let mut removed = false;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(false);
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            removed |= remove_others(root, &path, files)?;
            if std::fs::read_dir(&path)?.next().is_none() {
                std::fs::remove_dir(&path)?;
            }
            continue;
        }
        let relative = path
            .strip_prefix(root)?
            .to_string_lossy()
            .replace('\\', "/");
        if !files.contains_key(&relative) {
            std::fs::remove_file(&path)?;
            removed = true;
        }
    }
    Ok(removed)
}

fn build_server(root: &Path, release: bool, cuda: bool) -> Result<()> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root)
        .args(["build", "-p", "concord", "--bin", "concord"]);
    let mut features = Vec::new();
    if release {
        cmd.arg("--release");
        // A release binary is what gets copied to a server: it carries the default encoder.
        let model = root.join(EMBEDDED_MODEL_DIR);
        for file in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "sentence_bert_config.json",
        ] {
            if !model.join(file).is_file() {
                bail!(
                    "{} is missing: a release binary embeds the default encoder (scripts/setup.sh fetches it)",
                    model.join(file).display()
                );
            }
        }
        write_embedded_weights(root)?;
        features.push("embedded-model");
    }
    if cuda {
        features.push("cuda");
    }
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    run(&mut cmd)?;
    let dir = if release { "release" } else { "debug" };
    eprintln!(
        "xtask: binary at {}",
        root.join("target").join(dir).join("concord").display()
    );
    Ok(())
}
