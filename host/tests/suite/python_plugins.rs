//! Python plugins (issue 15): components built with componentize-py from
//! plugins/python (plugins/python/build.sh, which tests/bootstrap.sh runs
//! and these tests run again, rebuilding only what is out of date), loaded
//! by path like any plugin, in the same sandbox:
//!
//! - the Python ports of num-instances-filter, ram-weigher and
//!   standard-quota-policy answer exactly as their Rust crates;
//! - a Python plugin sees an empty sandbox (no files, no environment, no
//!   arguments, no sockets) and fits the default limits;
//! - in a real controller (the serve path, two embedded hosts) the Python
//!   filter's verdicts place and refuse servers, the Python weigher ranks,
//!   and the Python quota policy decides the create's quota check;
//! - `novum plugin new --lang python` writes a project that builds, loads
//!   and shows, through `novum plugin test`, the verdicts its logic gives.
//!
//! Without componentize-py (tests/bootstrap.sh installs it into
//! target/componentize-py) each test prints why and returns.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use novum_plugin_host::{Backend, PluginSelection, PluginSet, PluginsConfig};
use novum_plugin_sdk::fixtures::{quota_request, usage};
use novum_scheduler::table::HostRows;
use novum_scheduler::{SchedulingRequest, rank, synthetic};
use reqwest::Method;
use serde_json::Value;

use crate::common::engine;
use crate::http_cloud::{Cloud, server};

/// The novum source tree.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// componentize-py as tests/bootstrap.sh installs it.
fn componentize_py() -> PathBuf {
    root().join("target/componentize-py/bin/componentize-py")
}

/// The directory of the built Python plugins, building what is out of
/// date; `None` (reason printed) without componentize-py.
fn python_plugins() -> Option<PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = root().join("target/python-plugins");
            let mut build = Command::new("bash");
            build.arg(root().join("plugins/python/build.sh")).arg(&out);
            if componentize_py().exists() {
                build.env("COMPONENTIZE_PY", componentize_py());
            }
            let output = build.output().expect("bash runs");
            match output.status.code() {
                Some(0) => Some(out),
                Some(2) => {
                    eprintln!(
                        "skipping the Python plugin tests: {}",
                        String::from_utf8_lossy(&output.stderr).trim()
                    );
                    None
                }
                _ => panic!(
                    "plugins/python/build.sh failed:\n{}",
                    String::from_utf8_lossy(&output.stderr)
                ),
            }
        })
        .clone()
}

/// Plugin tables: `(name, component path or None for the builtin, config)`.
fn plugins_config(plugins: &[(&str, Option<&Path>, &str)]) -> PluginsConfig {
    let mut text = String::from("[defaults]\ndeadline_ms = 1000\n");
    for (name, path, config) in plugins {
        text.push_str(&format!("[{name}]\nconfig = {{ {config} }}\n"));
        if let Some(path) = path {
            text.push_str(&format!("path = {:?}\n", path.display().to_string()));
        }
    }
    toml::from_str(&text).expect("plugin tables parse")
}

fn load(filters: &[&str], weighers: &[&str], quota: &[&str], config: &PluginsConfig) -> PluginSet {
    let names = |names: &[&str]| names.iter().map(|name| (*name).to_string()).collect();
    let selection = PluginSelection {
        filters: names(filters),
        weighers: names(weighers),
        quota_policies: names(quota),
        ..PluginSelection::default()
    };
    PluginSet::load(&engine(), Backend::Wasm, &selection, config).expect("plugins load")
}

/// (host, reason) of every host the set's filters reject.
fn rejections(
    set: &PluginSet,
    rows: &HostRows<'_>,
    request: &SchedulingRequest,
) -> Vec<(String, String)> {
    rank(set, rows, request, &request.request)
        .expect("ranked")
        .rejections
        .into_iter()
        .map(|rejection| (rejection.host, rejection.reason))
        .collect()
}

#[test]
fn python_ports_answer_as_their_rust_crates() {
    let Some(dir) = python_plugins() else { return };
    let cloud = synthetic::cloud(7, 300);
    let rows = HostRows::new(&cloud);
    let mut request = synthetic::request(3, &cloud);
    request.force_hosts.clear();
    request.ignore_hosts.clear();
    for limit in ["0", "5", "12", "50"] {
        let setting = format!("max_instances_per_host = {limit:?}");
        let config = plugins_config(&[
            ("py", Some(&dir.join("num-instances-filter.wasm")), &setting),
            ("num-instances-filter", None, &setting),
        ]);
        let python = rejections(&load(&["py"], &[], &[], &config), &rows, &request);
        let rust = rejections(
            &load(&["num-instances-filter"], &[], &[], &config),
            &rows,
            &request,
        );
        assert_eq!(python, rust, "limit {limit}");
        if limit == "12" {
            assert!(
                !python.is_empty() && python.len() < 300,
                "{} rejected",
                python.len()
            );
        }
    }

    let config = plugins_config(&[("py-ram", Some(&dir.join("ram-weigher.wasm")), "")]);
    let weigh = |set: &PluginSet| {
        let ranking =
            novum_scheduler::pipeline::rank_traced(set, &rows, &request, &request.request, true)
                .expect("ranked");
        ranking.weighing.expect("kept").weighers[0].raw.clone()
    };
    let python = weigh(&load(&[], &["py-ram"], &[], &config));
    let rust = weigh(&load(&[], &["ram-weigher"], &[], &config));
    assert_eq!(python.len(), 300);
    assert_eq!(python, rust);

    let config = plugins_config(&[(
        "py-quota",
        Some(&dir.join("standard-quota-policy.wasm")),
        "",
    )]);
    let python = load(&[], &[], &["py-quota"], &config);
    let rust = load(&[], &[], &["standard-quota-policy"], &config);
    let checks = [
        vec![usage("instances", 9, 10, 1), usage("cores", 16, 20, 4)],
        vec![
            usage("instances", 1, 10, 1),
            usage("cores", 18, 20, 4),
            usage("ram", 0, 10, 512),
        ],
        vec![usage("instances", 10, 10, 1)],
        vec![
            usage("instances", 12, 10, -1),
            usage("ram", 0, -1, 1_000_000),
        ],
    ];
    let mut denied = 0;
    for resources in checks {
        let ask = |set: &PluginSet| {
            set.quota_policies()[0]
                .check_quota(
                    "req-quota",
                    quota_request("p1", "create", resources.clone()),
                )
                .expect("answered")
        };
        let answer = ask(&python);
        assert_eq!(answer, ask(&rust), "{resources:?}");
        denied += usize::from(answer.is_err());
    }
    assert_eq!(denied, 2);
}

#[test]
fn a_python_plugin_sees_an_empty_sandbox_and_fits_the_default_limits() {
    let Some(dir) = python_plugins() else { return };
    // The controller's defaults, deadline aside: its first call also
    // instantiates CPython (~20-30 ms in a debug build), which a loaded
    // test machine can stretch.
    let config = plugins_config(&[("probe", Some(&dir.join("sandbox-probe-filter.wasm")), "")]);
    let set = load(&["probe"], &[], &[], &config);
    let cloud = synthetic::cloud(1, 2);
    let rows = HostRows::new(&cloud);
    let request = SchedulingRequest::new("req-probe", synthetic::request(1, &cloud).request);
    let seen = rejections(&set, &rows, &request);
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].1,
        "file:FileNotFoundError listdir:FileNotFoundError env:0 argv:0 \
         socket:ModuleNotFoundError random:16 clock:True"
    );

    // 10,000 hosts fit in 16 MiB (CPython's heap starts near 13 MiB): the
    // default cap of 64 MiB needs no raising.
    let config: PluginsConfig = toml::from_str(&format!(
        "[defaults]\ndeadline_ms = 1000\nmemory_limit_mib = 16\n[py]\npath = {:?}\nconfig = {{ max_instances_per_host = \"12\" }}\n",
        dir.join("num-instances-filter.wasm").display().to_string()
    ))
    .expect("parses");
    let set = load(&["py"], &[], &[], &config);
    let cloud = synthetic::cloud(2, 10_000);
    let rows = HostRows::new(&cloud);
    let rejected = rejections(&set, &rows, &request);
    assert!(!rejected.is_empty() && rejected.len() < 10_000);
    assert_eq!(set.filters()[0].metrics().snapshot().error_count(), 0);
}

/// The server's fault (admin view) and host once it left BUILD.
async fn settle(cloud: &Cloud, id: &str) -> Value {
    for _ in 0..600 {
        let (_, body) = cloud
            .compute(
                &cloud.admin,
                Method::GET,
                &format!("/servers/{id}"),
                None,
                "2.57",
            )
            .await;
        if body["server"]["status"] != "BUILD" {
            return body["server"].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("server {id} still building");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn python_plugins_decide_in_a_real_controller() {
    let Some(dir) = python_plugins() else { return };
    let component = |name: &str| Some(dir.join(format!("{name}.wasm")));
    let cloud = Cloud::start(|config| {
        config.agent.embedded = true;
        config.agent.embedded_hosts = 2;
        config.quota.instances = 3;
        config.scheduler.enabled_filters = vec!["compute-filter".into(), "py-num-instances".into()];
        config.scheduler.weighers = vec!["py-ram".into()];
        config.quota.policies = vec!["py-quota".into()];
        for (name, file) in [
            ("py-num-instances", "num-instances-filter"),
            ("py-ram", "ram-weigher"),
            ("py-quota", "standard-quota-policy"),
        ] {
            let mut plugin = novum_plugin_host::PluginConfig {
                path: component(file),
                ..Default::default()
            };
            if name == "py-num-instances" {
                plugin.config.insert(
                    "max_instances_per_host".into(),
                    toml::Value::String("1".into()),
                );
            }
            config.plugins.plugins.insert(name.to_string(), plugin);
        }
    })
    .await;
    cloud.wait_for_hosts(2).await;
    let (_, _, member) = cloud.tenant("pythonic", "py-user", "member").await;
    let create = |name: &'static str| {
        let cloud = &cloud;
        let member = member.clone();
        async move {
            let (status, body) = cloud
                .compute(
                    &member,
                    Method::POST,
                    "/servers",
                    Some(server(name, "1")),
                    "2.37",
                )
                .await;
            (status, body)
        }
    };

    // One instance per host: the first two land on different hosts.
    let mut hosts = Vec::new();
    for name in ["py-1", "py-2"] {
        let (status, body) = create(name).await;
        assert_eq!(status, 202, "{body}");
        let id = body["server"]["id"].as_str().expect("id").to_string();
        let shown = settle(&cloud, &id).await;
        assert_eq!(shown["status"], "ACTIVE", "{shown}");
        hosts.push(
            shown["OS-EXT-SRV-ATTR:host"]
                .as_str()
                .expect("host")
                .to_string(),
        );
    }
    assert_ne!(
        hosts[0], hosts[1],
        "the Python filter rejected the busy host"
    );

    // The third finds both hosts full by the Python filter's verdicts.
    let (status, body) = create("py-3").await;
    assert_eq!(status, 202, "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    let shown = settle(&cloud, &id).await;
    assert_eq!(shown["status"], "ERROR", "{shown}");
    let message = shown["fault"]["message"]
        .as_str()
        .expect("fault")
        .to_string();
    assert!(
        message.contains("Top reasons: py-num-instances rejected 2 hosts"),
        "{message}"
    );
    let request_id = message
        .rsplit("novum decision show ")
        .next()
        .expect("names its decision")
        .trim();
    let (status, decisions) = cloud
        .call(
            &cloud.admin,
            Method::GET,
            &format!("/novum/v1/decisions/{request_id}"),
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 200, "{decisions}");
    let rejections = &decisions["decisions"][0]["rejections"];
    let groups = rejections.as_array().expect("rejections");
    assert_eq!(groups.len(), 1, "{rejections}");
    assert_eq!(groups[0]["plugin"], "py-num-instances");
    assert_eq!(
        groups[0]["reason"],
        "host has too many instances (max_instances_per_host 1)"
    );
    assert_eq!(groups[0]["hosts"].as_array().map(Vec::len), Some(2));

    // The Python quota policy decides the fourth: 3 instances of 3 (it is
    // the only policy configured; a policy that fails to load stops the
    // controller from starting).
    let (status, body) = create("py-4").await;
    assert_eq!(status, 403, "{body}");
    let fault = body.as_object().and_then(|fault| fault.values().next());
    assert_eq!(
        fault.map(|fault| &fault["message"]),
        Some(&Value::from(
            "Quota exceeded for instances: Requested 1, but already used 3 of 3 instances"
        )),
        "{body}"
    );

    // The scheduler's Python plugins were called through the loaded set.
    let (status, listed) = cloud
        .call(&cloud.admin, Method::GET, "/novum/v1/plugins", None, "2.1")
        .await;
    assert_eq!(status, 200, "{listed}");
    let plugin = |name: &str| {
        listed["plugins"]
            .as_array()
            .and_then(|plugins| plugins.iter().find(|plugin| plugin["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} listed: {listed}"))
    };
    let filter = plugin("py-num-instances");
    assert_eq!(filter["source"]["type"], "file");
    assert!(filter["metrics"]["calls"].as_u64() >= Some(3), "{filter}");
    assert!(plugin("py-ram")["metrics"]["calls"].as_u64() >= Some(1));
    cloud.stop().await;
}

#[test]
fn a_python_template_builds_loads_and_shows_its_verdicts() {
    use novum::plugin_tools::test::{TestOptions, load as load_component, run};
    use novum::plugin_tools::{Kind, Lang, new::write_project};
    if python_plugins().is_none() {
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("plugin-new-{}", uuid::Uuid::new_v4().simple()));
    let (files, _) = write_project(Lang::Python, Kind::Filter, "headroom", &dir, Path::new("."))
        .expect("written");
    assert!(files.iter().any(|file| file.ends_with("app.py")));
    let output = Command::new("bash")
        .arg(dir.join("build.sh"))
        .env("COMPONENTIZE_PY", componentize_py())
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let options = TestOptions {
        plugin: dir.join("headroom.wasm"),
        hosts: 40,
        seed: 9,
        config: vec![("headroom_mb".into(), "20000".into())],
        vcpus: 1,
        ram_mb: 2048,
        deadline_ms: Some(1000),
        memory_limit_mib: None,
    };
    let plugin = load_component(&engine(), &options).expect("the template loads");
    let text = run(&plugin, &options, &[]).expect("runs");
    // Each host's line says what the template's logic says of it.
    let cloud = synthetic::cloud(9, 40);
    let mut passed = 0;
    for host in cloud.hosts() {
        let left = host.memory_free_mb() - 2048;
        let line = text
            .lines()
            .find(|line| line.trim_start().starts_with(&format!("{} ", host.name)))
            .unwrap_or_else(|| panic!("{} listed:\n{text}", host.name));
        if left >= 20_000 {
            passed += 1;
            assert!(line.ends_with(" pass"), "{line}");
        } else {
            assert!(
                line.ends_with(&format!(
                    "reject  only {left} MB would be left, 20000 MB headroom wanted"
                )),
                "{line}"
            );
        }
    }
    assert!(passed > 0 && passed < 40, "{passed} passed");
    assert!(
        text.contains(&format!("passed {passed} of 40 hosts")),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
