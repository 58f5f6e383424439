//! Builds every plugin crate of the workspace as a `wasm32-wasip2` component and
//! embeds the shipped ones (filters, weighers, quota, hooks) into the plugin
//! host (`builtin.rs`).
//!
//! Plugin crates are discovered by scanning `plugins/<group>/*/Cargo.toml`, so a
//! new crate is picked up without editing this file. They are built by a nested
//! `cargo build --target wasm32-wasip2 --profile plugin` into
//! `<target dir>/wasm-<hash of the workspace root>`, distinct per checkout
//! (the root is the nearest ancestor directory whose `Cargo.toml` has a
//! `[workspace]` table).
//!
//! Outputs:
//! - `$OUT_DIR/builtin_plugins.rs`: `BUILTIN_WASM`, the shipped components by
//!   crate name (`include_bytes!`).
//! - `NOVUM_PLUGIN_WASM_DIR`: the directory holding every built component,
//!   test plugins (`plugins/testing/*`) included; published to other crates
//!   as `novum_plugin_host::builtin::PLUGIN_WASM_DIR`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Plugin groups built and embedded into the controller.
const SHIPPED_GROUPS: &[&str] = &["filters", "weighers", "quota", "hooks"];
/// Plugin groups built but never embedded: test plugins and the README's
/// worked example (operators load those by path).
const UNSHIPPED_GROUPS: &[&str] = &["testing", "examples"];

/// Environment a nested cargo must not inherit from the outer build.
const CLEANED_ENV: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_PKG_NAME",
    "CARGO_CFG_TARGET_FEATURE",
    "CARGO_PROFILE_RELEASE_DEBUG",
    "CARGO_INCREMENTAL",
    "CARGO_LLVM_COV",
    "RUSTDOCFLAGS",
    "CLIPPY_ARGS",
    "CLIPPY_CONF_DIR",
    "__CARGO_FIX_PLZ",
    "DEBUG",
    "OPT_LEVEL",
    "PROFILE",
    "TARGET",
    "HOST",
    "OUT_DIR",
    "NUM_JOBS",
];

struct PluginCrate {
    name: String,
    group: String,
}

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let root = workspace_root(&manifest_dir);
    println!("cargo:rerun-if-changed={}", root.join("plugins").display());
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    let crates = discover(&root);
    let target_root = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let wasm_target = target_root.join(format!("wasm-{}", short_hash(&root)));
    build(&root, &wasm_target, &crates);

    let wasm_dir = wasm_target.join("wasm32-wasip2").join("plugin");
    println!(
        "cargo:rustc-env=NOVUM_PLUGIN_WASM_DIR={}",
        wasm_dir.display()
    );
    write_builtins(&wasm_dir, &crates);
}

/// The nearest ancestor of `manifest_dir` whose `Cargo.toml` has a
/// `[workspace]` table: the root the plugin crates and `wit/` live under.
fn workspace_root(manifest_dir: &Path) -> PathBuf {
    manifest_dir
        .ancestors()
        .skip(1)
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .is_ok_and(|manifest| manifest.lines().any(|line| line.trim() == "[workspace]"))
        })
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("{} is in no cargo workspace", manifest_dir.display()))
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// Finds `plugins/<group>/*/Cargo.toml` and reads each package name.
fn discover(root: &Path) -> Vec<PluginCrate> {
    let mut crates = Vec::new();
    for group in SHIPPED_GROUPS.iter().chain(UNSHIPPED_GROUPS) {
        let Ok(entries) = std::fs::read_dir(root.join("plugins").join(group)) else {
            continue;
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .collect();
        dirs.sort();
        for dir in dirs {
            let manifest = dir.join("Cargo.toml");
            let Ok(text) = std::fs::read_to_string(&manifest) else {
                continue;
            };
            match package_name(&text) {
                Some(name) => crates.push(PluginCrate {
                    name,
                    group: (*group).to_string(),
                }),
                None => panic!("{} has no [package] name", manifest.display()),
            }
        }
    }
    crates
}

/// The `name` key of the `[package]` table.
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
            continue;
        }
        if in_package && let Some(rest) = line.strip_prefix("name") {
            let value = rest.trim_start().strip_prefix('=')?.trim();
            return Some(value.trim_matches('"').to_string());
        }
    }
    None
}

fn short_hash(path: &Path) -> String {
    let mut hasher = DefaultHasher::new();
    path.hash(&mut hasher);
    format!("{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}

fn build(root: &Path, target_dir: &Path, crates: &[PluginCrate]) {
    if crates.is_empty() {
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args([
            "build",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "plugin",
            "--target-dir",
        ])
        .arg(target_dir);
    for plugin in crates {
        command.args(["-p", &plugin.name]);
    }
    for name in CLEANED_ENV {
        command.env_remove(name);
    }
    for (key, _) in std::env::vars_os() {
        if let Some(key) = key.to_str()
            && (key.starts_with("CARGO_FEATURE_")
                || key.starts_with("CARGO_CFG_")
                || key.starts_with("DEP_"))
        {
            command.env_remove(key);
        }
    }
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("could not run cargo to build the plugins: {error}"));
    if !output.status.success() {
        panic!(
            "building the wasm plugins failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn write_builtins(wasm_dir: &Path, crates: &[PluginCrate]) {
    let mut source = String::from(
        "/// The shipped plugin components, by crate name (generated by build.rs).\n\
         pub static BUILTIN_WASM: &[BuiltinWasm] = &[\n",
    );
    for plugin in crates
        .iter()
        .filter(|plugin| !UNSHIPPED_GROUPS.contains(&plugin.group.as_str()))
    {
        let file = wasm_dir.join(format!("{}.wasm", plugin.name.replace('-', "_")));
        if !file.exists() {
            panic!(
                "plugin {} built but {} is missing",
                plugin.name,
                file.display()
            );
        }
        source.push_str(&format!(
            "    BuiltinWasm {{ name: {:?}, group: {:?}, bytes: include_bytes!({:?}) }},\n",
            plugin.name,
            plugin.group,
            file.display().to_string()
        ));
    }
    source.push_str("];\n");
    let out = PathBuf::from(env("OUT_DIR")).join("builtin_plugins.rs");
    std::fs::write(&out, source)
        .unwrap_or_else(|error| panic!("writing {}: {error}", out.display()));
}
