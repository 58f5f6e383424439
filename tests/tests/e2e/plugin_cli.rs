//! `novum plugin list` and `novum plugin reload` against a running `novum
//! serve`, authenticating from the same `OS_*` environment as the openstack CLI.

use novum_tests::{Cloud, novum_cli};

fn novum(cloud: &Cloud, args: &[&str]) -> anyhow::Result<String> {
    novum_cli(cloud.cli_env(), args)
}

#[test]
fn plugin_list_and_reload() -> anyhow::Result<()> {
    let _turn = novum_tests::shared_turn();
    let cloud = Cloud::start("plugin-cli", "")?;
    let listed = novum(&cloud, &["plugin", "list"])?;
    for name in ["compute-filter", "availability-zone-filter", "ram-weigher"] {
        assert!(listed.contains(name), "{listed}");
    }

    // Drop the availability-zone filter from the running set.
    let original = std::fs::read_to_string(&cloud.config_path)?;
    std::fs::write(
        &cloud.config_path,
        format!("{original}\n[scheduler]\nenabled_filters = [\"compute-filter\"]\n"),
    )?;
    let reloaded = novum(&cloud, &["plugin", "reload"])?;
    assert!(reloaded.contains("compute-filter"), "{reloaded}");
    assert!(!reloaded.contains("availability-zone-filter"), "{reloaded}");

    // A broken set is refused with the plugin's name; the running set stays.
    std::fs::write(
        &cloud.config_path,
        format!("{original}\n[scheduler]\nenabled_filters = [\"nope-filter\"]\n"),
    )?;
    let refused = novum(&cloud, &["plugin", "reload"]).expect_err("unknown plugin");
    assert!(refused.to_string().contains("nope-filter"), "{refused}");
    let listed = novum(&cloud, &["plugin", "list"])?;
    assert!(
        listed.contains("compute-filter") && !listed.contains("availability-zone-filter"),
        "{listed}"
    );
    Ok(())
}
