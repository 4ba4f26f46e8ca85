//! Build driver for Concord: the wasm frontend, `wasm-bindgen`, `wasm-opt`, the CSS and public
//! files, then the server binary that embeds them. It only runs tools already installed (see
//! `scripts/setup.sh`); nothing is downloaded.
//!
//! `cargo xtask site [--release]`   build target/site (the browser bundle)
//! `cargo xtask build [--release]`  the site, then the `concord` binary
//!
//! The wasm build uses an installed rustup `wasm32-unknown-unknown` target when there is one
//! (an ordinary laptop); otherwise Debian's `rustc-web` at /usr/bin with `-Zbuild-std`, which is
//! what works on machines where rustup cannot download targets. `CONCORD_WASM_TOOLCHAIN=debian`
//! or `=rustup` forces the choice.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

const TARGET: &str = "wasm32-unknown-unknown";
const OUTPUT_NAME: &str = "concord";

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
    // Built in a staging folder, then copied into target/site file by file only where the
    // bytes differ: the server embeds target/site and cargo rebuilds it when a file's mtime
    // changes, so an unchanged site must keep its mtimes.
    let staging = root.join("target/site-staging");
    let site = root.join("target/site");
    let pkg = staging.join("pkg");
    std::fs::create_dir_all(&pkg)?;

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
        .arg(&pkg)
        .arg(&wasm))?;

    if release {
        let wasm_opt = root.join("end2end/node_modules/.bin/wasm-opt");
        if !wasm_opt.exists() {
            bail!(
                "wasm-opt not found at {}: run `npm ci` in end2end/ (scripts/setup.sh does)",
                wasm_opt.display()
            );
        }
        let bundle = pkg.join(format!("{OUTPUT_NAME}_bg.wasm"));
        // wasm-opt takes most of a warm build: reuse its last output for the same input.
        let cache_in = staging.join("wasm-opt.in");
        let cache_out = staging.join("wasm-opt.out");
        let input = std::fs::read(&bundle)?;
        if std::fs::read(&cache_in).ok().as_deref() == Some(input.as_slice()) && cache_out.exists()
        {
            std::fs::copy(&cache_out, &bundle)?;
        } else {
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
                .arg(&bundle)
                .arg(&bundle))?;
            std::fs::write(&cache_in, &input)?;
            std::fs::copy(&bundle, &cache_out)?;
        }
    }

    std::fs::copy(root.join("style/concord.css"), staging.join("style.css"))
        .context("copying style/concord.css")?;
    for entry in std::fs::read_dir(root.join("public")).context("reading public/")? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), staging.join(entry.file_name()))?;
        }
    }
    let changed = sync_changed(&staging, &site)?;
    if changed {
        // A new file is only seen by rust-embed when assets.rs compiles again.
        let assets = root.join("server/src/assets.rs");
        std::fs::File::options()
            .write(true)
            .open(&assets)?
            .set_modified(std::time::SystemTime::now())?;
    }
    eprintln!(
        "xtask: site ready in {} ({})",
        site.display(),
        if changed { "updated" } else { "unchanged" }
    );
    Ok(())
}

/// Copies every file of `from` into `to` whose contents differ; true if any did.
fn sync_changed(from: &Path, to: &Path) -> Result<bool> {
    let mut changed = false;
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            changed |= sync_changed(&entry.path(), &target)?;
        } else {
            let new = std::fs::read(entry.path())?;
            if std::fs::read(&target).ok().as_deref() != Some(new.as_slice()) {
                std::fs::write(&target, &new)?;
                changed = true;
            }
        }
    }
    Ok(changed)
}

fn build_server(root: &Path, release: bool, cuda: bool) -> Result<()> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root)
        .args(["build", "-p", "concord", "--bin", "concord"]);
    if release {
        cmd.arg("--release");
    }
    if cuda {
        cmd.args(["--features", "cuda"]);
    }
    run(&mut cmd)?;
    let dir = if release { "release" } else { "debug" };
    eprintln!(
        "xtask: binary at {}",
        root.join("target").join(dir).join("concord").display()
    );
    Ok(())
}
