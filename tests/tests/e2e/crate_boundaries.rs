//! The crate boundaries of ARCHITECTURE.md, checked on `cargo metadata`.
//!
//! Every workspace crate has a layer; a crate may depend only on crates of a
//! lower layer (domain crates also on each other), and some layers may not use
//! some outside crates at all: the HTTP layer no sqlx, the domain and
//! infrastructure layers no axum and no metrics exporter (they record through
//! the `metrics` facade), the agent nothing of the controller's.
//! A workspace crate that has no layer fails the check, so a new crate is
//! placed on the map when it is added.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

/// Where a workspace crate sits. Declaration order is the layering: a crate
/// may depend on the workspace crates of the layers above it in this list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    /// Shared with the agent and with plugin authors: `novum-wire`,
    /// `novum-plugin-sdk`, and the plugin crates built on the SDK.
    Shared,
    /// `novum-db`, `novum-plugin-host`: infrastructure without a domain.
    Infrastructure,
    /// `novum-scheduler`: host state, tables, pipeline.
    Scheduler,
    /// Domain crates: identity, images, quota, notify, network, …
    Domain,
    /// `novum-compute`: conductor, claims, operations, compute repositories.
    Compute,
    /// `novum-config`: the configuration file, composed of every crate's
    /// own section.
    Configuration,
    /// `novum-api`: the HTTP layer.
    Api,
    /// `novum`: the binary that composes everything.
    Binary,
    /// `novum-agent`: the per-hypervisor agent, a separate program.
    Agent,
    /// `novum-tests`: end-to-end tests, may use anything.
    Tests,
}

/// The layer of a workspace crate, from its name and manifest path; `None`
/// for a crate nobody has placed yet.
fn layer_of(name: &str, manifest_path: &str) -> Option<Layer> {
    let layer = match name {
        "novum-wire" | "novum-plugin-sdk" => Layer::Shared,
        "novum-db" | "novum-plugin-host" => Layer::Infrastructure,
        "novum-scheduler" => Layer::Scheduler,
        "novum-identity" | "novum-images" | "novum-quota" | "novum-notify" | "novum-network" => {
            Layer::Domain
        }
        "novum-compute" => Layer::Compute,
        "novum-config" => Layer::Configuration,
        "novum-api" => Layer::Api,
        "novum" => Layer::Binary,
        "novum-agent" => Layer::Agent,
        "novum-tests" => Layer::Tests,
        _ if manifest_path.contains("/plugins/") => Layer::Shared,
        _ => return None,
    };
    Some(layer)
}

/// Outside crates a layer must not depend on directly, and why.
fn forbidden_outside(layer: Layer) -> &'static [(&'static str, &'static str)] {
    // Below the API, crates record metrics through the `metrics` facade;
    // the exporter (the recorder and its text format) is the API's.
    const BELOW_THE_API: &[(&str, &str)] = &[
        ("axum", "HTTP belongs to novum-api"),
        ("tower-http", "HTTP belongs to novum-api"),
        (
            "metrics-exporter-prometheus",
            "the metrics exporter belongs to novum-api; record through the `metrics` facade",
        ),
    ];
    match layer {
        Layer::Api => &[("sqlx", "the HTTP layer calls domain services, never SQL")],
        Layer::Infrastructure
        | Layer::Scheduler
        | Layer::Domain
        | Layer::Compute
        | Layer::Configuration => BELOW_THE_API,
        Layer::Agent => &[
            ("sqlx", "the agent keeps no controller database"),
            ("wasmtime", "the agent runs no plugins"),
            ("axum", "the agent serves no API"),
        ],
        Layer::Shared => &[
            ("sqlx", "shared crates stay light"),
            ("wasmtime", "shared crates stay light"),
            ("axum", "shared crates stay light"),
        ],
        Layer::Binary | Layer::Tests => &[],
    }
}

/// May a crate of layer `from` depend on the workspace crate of layer `to`?
fn may_depend(from: Layer, to: Layer) -> bool {
    match from {
        Layer::Tests => true,
        // The agent shares only the wire types with the controller.
        Layer::Agent => to == Layer::Shared,
        // The binary runs embedded agents in its own process.
        Layer::Binary => to != Layer::Tests,
        // Plugins build on the SDK; a domain may use another (images asks
        // identity), and cargo refuses cycles.
        Layer::Shared | Layer::Domain => to <= from,
        _ => to < from,
    }
}

/// One workspace crate: its name, layer (if placed) and direct normal and
/// build dependencies (dev-dependencies are the tests' business).
struct Crate {
    name: String,
    layer: Option<Layer>,
    dependencies: Vec<String>,
}

/// The workspace crates of a `cargo metadata --no-deps` document.
fn workspace_crates(metadata: &Value) -> Vec<Crate> {
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    packages
        .iter()
        .map(|package| {
            let name = package["name"].as_str().unwrap_or_default().to_string();
            let manifest_path = package["manifest_path"].as_str().unwrap_or_default();
            let dependencies = package["dependencies"]
                .as_array()
                .map(|dependencies| {
                    dependencies
                        .iter()
                        .filter(|dependency| dependency["kind"].as_str() != Some("dev"))
                        .filter_map(|dependency| dependency["name"].as_str())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            Crate {
                layer: layer_of(&name, manifest_path),
                name,
                dependencies,
            }
        })
        .collect()
}

/// Every broken rule, one sentence each.
fn violations(metadata: &Value) -> Vec<String> {
    let crates = workspace_crates(metadata);
    let layers: BTreeMap<&str, Option<Layer>> = crates
        .iter()
        .map(|krate| (krate.name.as_str(), krate.layer))
        .collect();
    let mut found = Vec::new();
    for krate in &crates {
        let Some(layer) = krate.layer else {
            found.push(format!(
                "{} has no layer: place it in crate_boundaries::layer_of and ARCHITECTURE.md",
                krate.name
            ));
            continue;
        };
        for dependency in &krate.dependencies {
            match layers.get(dependency.as_str()) {
                Some(Some(to)) if !may_depend(layer, *to) => found.push(format!(
                    "{} ({layer:?}) depends on {dependency} ({to:?})",
                    krate.name
                )),
                Some(_) => {}
                None => {
                    if let Some((_, why)) = forbidden_outside(layer)
                        .iter()
                        .find(|(forbidden, _)| forbidden == dependency)
                    {
                        found.push(format!(
                            "{} ({layer:?}) depends on {dependency}: {why}",
                            krate.name
                        ));
                    }
                }
            }
        }
    }
    found
}

/// `cargo metadata` of this workspace, without outside packages.
fn workspace_metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

#[test]
fn every_crate_keeps_to_its_layer() {
    let metadata = workspace_metadata();
    let crates = workspace_crates(&metadata);
    assert!(
        crates.iter().any(|krate| krate.name == "novum")
            && crates.iter().any(|krate| krate.name == "novum-agent"),
        "cargo metadata lists the workspace"
    );
    let found = violations(&metadata);
    assert!(
        found.is_empty(),
        "crate boundaries broken:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_catches_each_kind_of_break() {
    let package = |name: &str, path: &str, dependencies: &[(&str, &str)]| {
        serde_json::json!({
            "name": name,
            "manifest_path": path,
            "dependencies": dependencies
                .iter()
                .map(|(name, kind)| serde_json::json!({
                    "name": name,
                    "kind": if kind.is_empty() { Value::Null } else { Value::from(*kind) },
                }))
                .collect::<Vec<_>>(),
        })
    };
    let metadata = serde_json::json!({ "packages": [
        package("novum-api", "/w/host/api/Cargo.toml", &[("sqlx", ""), ("axum", "")]),
        package("novum-quota", "/w/host/quota/Cargo.toml", &[("axum", ""), ("novum-api", ""), ("novum-db", "")]),
        package("novum-identity", "/w/host/identity/Cargo.toml", &[("novum-quota", ""), ("sqlx", "")]),
        package("novum-db", "/w/host/db/Cargo.toml", &[("sqlx", ""), ("axum", "dev")]),
        package("novum-notify", "/w/host/notify/Cargo.toml", &[("metrics", ""), ("metrics-exporter-prometheus", "")]),
        package("novum-agent", "/w/compute-agent/Cargo.toml", &[("novum-wire", ""), ("novum-db", ""), ("wasmtime", "")]),
        package("novum-wire", "/w/compute-agent/wire/Cargo.toml", &[]),
        package("novum-stray", "/w/host/stray/Cargo.toml", &[]),
        package("ram-weigher", "/w/plugins/weighers/ram/Cargo.toml", &[("novum-plugin-sdk", "")]),
    ]});
    let found = violations(&metadata);
    let expected = [
        "novum-api (Api) depends on sqlx",
        "novum-quota (Domain) depends on axum",
        "novum-quota (Domain) depends on novum-api (Api)",
        "novum-notify (Domain) depends on metrics-exporter-prometheus",
        "novum-agent (Agent) depends on novum-db (Infrastructure)",
        "novum-agent (Agent) depends on wasmtime",
        "novum-stray has no layer",
    ];
    for sentence in expected {
        assert!(
            found
                .iter()
                .any(|violation| violation.starts_with(sentence)),
            "{sentence:?} not reported in {found:#?}"
        );
    }
    assert_eq!(found.len(), expected.len(), "only the breaks: {found:#?}");
}
