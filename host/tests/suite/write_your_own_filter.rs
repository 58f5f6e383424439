//! The README's "Write your own filter" walk-through, end to end: the example
//! crate in plugins/examples/ram-headroom-filter is built for wasm32-wasip2 by
//! the host's build script, loaded by path from a TOML plugin table exactly as
//! the README shows, and run by the real scheduler.

use crate::common;

use common::{cloud, engine, request};
use novum_plugin_host::{Backend, PluginSelection, PluginSet, PluginsConfig};
use novum_scheduler::{NoClaims, ScheduleError, SchedulerConfig, schedule};
use rand::SeedableRng;
use rand::rngs::StdRng;

#[test]
fn the_readme_example_filter_builds_loads_and_runs() {
    let wasm = novum_plugin_host::builtin::built_component_path("ram-headroom-filter");
    assert!(wasm.exists(), "the build script built {}", wasm.display());
    // The README's configuration, with the path filled in.
    let plugins: PluginsConfig = toml::from_str(&format!(
        "[ram-headroom]\npath = {:?}\nconfig = {{ headroom_mb = 3700 }}\n",
        wasm.display().to_string()
    ))
    .expect("the README's plugin table parses");
    let selection = PluginSelection {
        filters: vec!["ram-headroom".to_string()],
        ..PluginSelection::default()
    };
    let set =
        PluginSet::load(&engine(), Backend::Wasm, &selection, &plugins).expect("the example loads");
    let info = set.plugin("ram-headroom").expect("listed").info().clone();
    assert_eq!(info.description, "keeps RAM headroom on every host");

    // cloud(4): hosts with 4096, 4196, 4296, 4396 MB free; the request wants 512.
    let snapshot = cloud(4);
    let mut rng = StdRng::seed_from_u64(7);
    let selections = schedule(
        &set,
        &SchedulerConfig::default(),
        &snapshot,
        &request(None),
        &NoClaims,
        &mut rng,
    )
    .expect("two hosts keep the headroom");
    assert!(
        ["host-2", "host-3"].contains(&selections[0].host.as_str()),
        "{:?}",
        selections[0].host
    );

    // With more headroom wanted than any host has, the explanation names the
    // plugin and its reason for every host.
    let greedy: PluginsConfig = toml::from_str(&format!(
        "[ram-headroom]\npath = {:?}\nconfig = {{ headroom_mb = 100000 }}\n",
        wasm.display().to_string()
    ))
    .expect("parses");
    let set = PluginSet::load(&engine(), Backend::Wasm, &selection, &greedy).expect("loads");
    let error = schedule(
        &set,
        &SchedulerConfig::default(),
        &snapshot,
        &request(None),
        &NoClaims,
        &mut rng,
    )
    .expect_err("no host keeps 100 GB free");
    let ScheduleError::NoValidHost(explanation) = error else {
        panic!("expected no valid host")
    };
    assert_eq!(explanation.rejections.len(), 4);
    assert!(explanation.rejections.iter().all(|rejection| {
        rejection.plugin == "ram-headroom"
            && rejection
                .reason
                .ends_with("MB would be left, 100000 MB headroom wanted")
    }));
}
