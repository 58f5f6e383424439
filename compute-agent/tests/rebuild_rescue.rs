//! Rebuild, rescue and unrescue on libvirt's test driver: the definitions
//! they leave (the new image's domain; the rescue disk first with the root
//! disk second, the original definition restored), idempotence, a domain
//! store that outlives the agent, and the tasks through `execute::run`.

use std::collections::BTreeMap;

use novum_agent::driver::{
    DriverError, LibvirtDriver, LibvirtOptions, TestNode, VirtDriver, rescued_original,
};
use novum_agent::execute;
use novum_wire::{FlavorSpec, ImageSpec, PowerState, SpawnSpec, Task, TaskAction, TaskOutcome};
use uuid::Uuid;
use virt::domain::Domain;
use virt::sys;

fn spec(image: &str, name: &str) -> SpawnSpec {
    SpawnSpec {
        name: name.into(),
        flavor: FlavorSpec {
            name: "m1.small".into(),
            vcpus: 1,
            memory_mb: 512,
            root_gb: 1,
            ephemeral_gb: 1,
            swap_mb: 64,
        },
        image: ImageSpec {
            id: image.into(),
            properties: BTreeMap::new(),
        },
        user_data: None,
        metadata: BTreeMap::new(),
        interfaces: Vec::new(),
        project_id: None,
        config_drive: None,
    }
}

fn image(id: &str) -> ImageSpec {
    ImageSpec {
        id: id.into(),
        properties: BTreeMap::new(),
    }
}

fn definition(driver: &LibvirtDriver, id: Uuid) -> String {
    Domain::lookup_by_uuid_string(driver.connect(), &id.to_string())
        .expect("domain")
        .get_xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
        .expect("xml")
}

/// The (file name, target) of each disk of a definition, in order.
fn disks(xml: &str) -> Vec<(String, String)> {
    let doc = roxmltree::Document::parse(xml).expect("xml");
    doc.descendants()
        .filter(|n| n.has_tag_name("disk") && n.attribute("device") == Some("disk"))
        .map(|disk| {
            let file = disk
                .children()
                .find(|n| n.has_tag_name("source"))
                .and_then(|n| n.attribute("file"))
                .unwrap_or_default();
            let target = disk
                .children()
                .find(|n| n.has_tag_name("target"))
                .and_then(|n| n.attribute("dev"))
                .unwrap_or_default();
            (
                file.rsplit('/').next().unwrap_or_default().to_string(),
                target.to_string(),
            )
        })
        .collect()
}

fn title(xml: &str) -> String {
    let doc = roxmltree::Document::parse(xml).expect("xml");
    doc.descendants()
        .find(|n| n.has_tag_name("title"))
        .and_then(|n| n.text())
        .unwrap_or_default()
        .to_string()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn rebuild_redefines_with_the_new_image_and_keeps_a_stopped_guest_off() {
    let node = TestNode::create(4, 8192).expect("node");
    let driver = LibvirtDriver::open(&node.uri(), LibvirtOptions::default()).expect("open");
    let id = Uuid::new_v4();
    driver.spawn(id, &spec("old-image", "before")).unwrap();
    driver
        .rebuild(id, &spec("new-image", "after"), true, false)
        .unwrap();
    assert_eq!(driver.power_state(id).unwrap(), Some(PowerState::Running));
    let xml = definition(&driver, id);
    assert_eq!(title(&xml), "after");
    assert_eq!(
        disks(&xml),
        owned(&[("disk", "vda"), ("disk.eph0", "vdb"), ("disk.swap", "vdc")])
    );
    // Delivered twice: the same place.
    driver
        .rebuild(id, &spec("new-image", "after"), true, true)
        .unwrap();
    assert_eq!(driver.power_state(id).unwrap(), Some(PowerState::Running));

    // A stopped server is rebuilt and stays off.
    driver.power_off(id).unwrap();
    driver
        .rebuild(id, &spec("new-image", "again"), false, true)
        .unwrap();
    assert_eq!(driver.power_state(id).unwrap(), Some(PowerState::Shutdown));
    assert_eq!(title(&definition(&driver, id)), "again");

    // An instance whose domain is gone (one in ERROR) gets one again.
    driver.destroy(id).unwrap();
    driver
        .rebuild(id, &spec("new-image", "reborn"), true, false)
        .unwrap();
    assert_eq!(driver.power_state(id).unwrap(), Some(PowerState::Running));
}

#[test]
fn rescue_boots_the_rescue_disk_with_the_root_second_and_unrescue_restores() {
    let node = TestNode::create(4, 8192).expect("node");
    let driver = LibvirtDriver::open(&node.uri(), LibvirtOptions::default()).expect("open");
    let id = Uuid::new_v4();
    let own = spec("own-image", "vm");
    assert!(matches!(
        driver.rescue(id, &own, &image("rescue-image")),
        Err(DriverError::NotFound(_))
    ));
    driver.spawn(id, &own).unwrap();
    let original = definition(&driver, id);
    assert_eq!(rescued_original(&original).unwrap(), None);

    driver.rescue(id, &own, &image("rescue-image")).unwrap();
    assert_eq!(driver.power_state(id).unwrap(), Some(PowerState::Running));
    let rescued = definition(&driver, id);
    assert_eq!(
        disks(&rescued),
        owned(&[("disk.rescue", "vda"), ("disk", "vdb")]),
        "{rescued}"
    );
    assert_eq!(
        rescued_original(&rescued).unwrap().as_deref(),
        Some(original.as_str())
    );
    // Rescued already: nothing changes.
    driver.rescue(id, &own, &image("other-image")).unwrap();
    assert_eq!(definition(&driver, id), rescued);

    driver.unrescue(id).unwrap();
    assert_eq!(driver.power_state(id).unwrap(), Some(PowerState::Running));
    let restored = definition(&driver, id);
    assert_eq!(restored, original);
    assert_eq!(
        disks(&restored),
        owned(&[("disk", "vda"), ("disk.eph0", "vdb"), ("disk.swap", "vdc")])
    );
    // Not rescued: nothing to do but run.
    driver.power_off(id).unwrap();
    driver.unrescue(id).unwrap();
    assert_eq!(driver.power_state(id).unwrap(), Some(PowerState::Running));
    assert_eq!(definition(&driver, id), original);

    // A stopped server can be rescued too (Nova's list): it then runs.
    driver.power_off(id).unwrap();
    driver.rescue(id, &own, &image("rescue-image")).unwrap();
    assert_eq!(driver.power_state(id).unwrap(), Some(PowerState::Running));
    driver.destroy(id).unwrap();
}

#[test]
fn a_rescue_outlives_the_agent_in_the_domain_store() {
    let node = TestNode::create(4, 8192).expect("node");
    let store = std::env::temp_dir().join(format!("novum-store-{}", Uuid::new_v4()));
    let options = LibvirtOptions {
        domain_store: Some(store.clone()),
        ..LibvirtOptions::default()
    };
    let id = Uuid::new_v4();
    let own = spec("own-image", "vm");
    let original = {
        let driver = LibvirtDriver::open(&node.uri(), options.clone()).expect("open");
        driver.spawn(id, &own).unwrap();
        let original = definition(&driver, id);
        driver.rescue(id, &own, &image("rescue-image")).unwrap();
        original
    };
    let driver = LibvirtDriver::open(&node.uri(), options).expect("reopen");
    assert_eq!(driver.power_state(id).unwrap(), Some(PowerState::Running));
    assert!(
        rescued_original(&definition(&driver, id))
            .unwrap()
            .is_some()
    );
    driver.unrescue(id).unwrap();
    assert_eq!(definition(&driver, id), original);
    drop(driver);
    let _ = std::fs::remove_dir_all(store);
}

#[test]
fn the_tasks_run_through_execute() {
    let node = TestNode::create(4, 8192).expect("node");
    let driver = LibvirtDriver::open(&node.uri(), LibvirtOptions::default()).expect("open");
    let id = Uuid::new_v4();
    let run = |action: TaskAction| {
        execute::run(
            &driver,
            &Task {
                id: Uuid::new_v4(),
                instance_uuid: id,
                request_id: None,
                action,
            },
        )
        .outcome
    };
    let running = TaskOutcome::Succeeded {
        power_state: PowerState::Running,
    };
    assert_eq!(run(TaskAction::Spawn(spec("a", "vm"))), running);
    assert_eq!(
        run(TaskAction::Rebuild {
            spec: spec("b", "vm"),
            power_on: true,
            preserve_ephemeral: false,
        }),
        running
    );
    assert_eq!(
        run(TaskAction::Rescue {
            spec: spec("b", "vm"),
            rescue_image: image("b"),
        }),
        running
    );
    assert_eq!(run(TaskAction::Unrescue), running);
    let TaskOutcome::Failed { message, .. } = run(TaskAction::Rebuild {
        spec: spec("bad\u{0}image", "vm"),
        power_on: true,
        preserve_ephemeral: false,
    }) else {
        panic!("a NUL in the image id must fail the rebuild");
    };
    assert!(
        message.starts_with("rebuild failed: invalid input"),
        "{message}"
    );
    assert_eq!(
        run(TaskAction::Destroy).clone(),
        TaskOutcome::Succeeded {
            power_state: PowerState::NoState
        }
    );
}
