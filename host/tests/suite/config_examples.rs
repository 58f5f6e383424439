//! Every example in config/ parses with the real configuration types, so the
//! examples cannot drift from the code.

#[test]
fn every_example_configuration_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("config/ exists") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|extension| extension.to_str()) != Some("toml") {
            continue;
        }
        novum_config::Config::load(Some(&path))
            .unwrap_or_else(|error| panic!("{}: {error:#}", path.display()));
        seen += 1;
    }
    assert!(seen >= 3, "found {seen} examples");
}

#[test]
fn the_all_in_one_example_is_the_defaults() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/all-in-one.toml");
    let mut example = novum_config::Config::load(Some(&path)).expect("parses");
    example.source = None;
    let defaults = novum_config::Config::default();
    assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
}
