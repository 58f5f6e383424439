//! Quotas at the module level, on SQLite and PostgreSQL (skipped with a
//! printed reason when no server answers): the limit lookup, the race of 500
//! concurrent creates (serialized check + insert), min/max counts, per-user
//! limits, key pairs and server groups, and the quota-policy plugins through
//! the real wasmtime runtime (standard, flavor-class, burst, a misbehaving
//! policy and its `on_error`).

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use novum_compute::conductor::model::FlavorSnapshot;
use novum_db::{Db, Tx};
use novum_plugin_host::{Backend, OnError, PluginConfig, PluginSelection, Plugins, PluginsConfig};
use novum_plugin_sdk::{Flavor, KeyValue};
use novum_quota::{InstanceCheck, Quota, QuotaConfig, QuotaError, Resource, store};

/// A fresh SQLite database, and a PostgreSQL one when a server answers.
async fn databases() -> Vec<(&'static str, Db)> {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("quota-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut dbs = vec![(
        "sqlite",
        novum_db::testing::sqlite(&dir).await.expect("sqlite"),
    )];
    if let Some(db) = novum_db::testing::postgres().await {
        dbs.push(("postgres", db));
    }
    dbs
}

/// The quota service over `db` with `policies`, each configured by `plugins`.
fn quota(db: &Db, policies: &[&str], plugins: PluginsConfig) -> Quota {
    let config = QuotaConfig {
        policies: policies.iter().map(|name| (*name).to_string()).collect(),
        ..QuotaConfig::default()
    };
    let selection = PluginSelection {
        quota_policies: config.policies.clone(),
        ..PluginSelection::default()
    };
    let loaded = Plugins::load(common::engine(), Backend::Wasm, &selection, &plugins)
        .expect("quota policies load");
    Quota::new(db.clone(), config, Arc::new(loaded))
}

fn standard(db: &Db) -> Quota {
    quota(db, &["standard-quota-policy"], common::plugins_config())
}

fn flavor(name: &str, vcpus: u32, memory_mb: u64, specs: &[(&str, &str)]) -> Flavor {
    Flavor {
        id: name.to_string(),
        name: name.to_string(),
        vcpus,
        memory_mb,
        root_gb: 1,
        ephemeral_gb: 0,
        swap_mb: 0,
        extra_specs: specs
            .iter()
            .map(|(key, value)| KeyValue {
                key: (*key).to_string(),
                value: (*value).to_string(),
            })
            .collect(),
    }
}

/// The flavor snapshot an instance row of `flavor` keeps.
fn snapshot(flavor: &Flavor) -> FlavorSnapshot {
    let size = |value: u64| i64::try_from(value).expect("test sizes fit");
    FlavorSnapshot {
        id: flavor.id.clone(),
        name: flavor.name.clone(),
        vcpus: i64::from(flavor.vcpus),
        memory_mb: size(flavor.memory_mb),
        root_gb: size(flavor.root_gb),
        ephemeral_gb: size(flavor.ephemeral_gb),
        swap: size(flavor.swap_mb),
        extra_specs: flavor
            .extra_specs
            .iter()
            .map(|spec| (spec.key.clone(), spec.value.clone()))
            .collect(),
    }
}

fn check<'a>(
    project: &'a str,
    user: &'a str,
    flavor: &'a Flavor,
    min: u32,
    max: u32,
) -> InstanceCheck<'a> {
    InstanceCheck {
        project_id: project,
        user_id: user,
        flavor,
        min_count: min,
        max_count: max,
        group: None,
        absolute: &[],
        request_id: "req-quota-test",
    }
}

/// Inserts `count` instance rows the way a create does (vcpus and memory_mb
/// from the flavor).
async fn insert_instances(tx: &mut Tx, project: &str, user: &str, flavor: &Flavor, count: u32) {
    let snapshot = snapshot(flavor);
    let snapshot_json = serde_json::to_string(&snapshot).expect("flavor json");
    for _ in 0..count {
        let now = novum_db::now();
        sqlx::query(
            "INSERT INTO instances (uuid, display_name, project_id, user_id, flavor_id, flavor, vm_state, reservation_id, \
             created_at, updated_at, vcpus, memory_mb) VALUES ($1, 'vm', $2, $3, $4, $5, 'building', 'r-test', $6, $6, $7, $8)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(project)
        .bind(user)
        .bind(&snapshot.id)
        .bind(&snapshot_json)
        .bind(now)
        .bind(snapshot.vcpus)
        .bind(snapshot.memory_mb)
        .execute(&mut **tx)
        .await
        .expect("insert instance");
    }
}

/// The serialized create: check, insert what is allowed, commit.
async fn create(quota: &Quota, check: &InstanceCheck<'_>) -> Result<u32, QuotaError> {
    let mut tx = quota.begin(check.project_id).await?;
    let count = quota.check_instances(&mut tx, check).await?;
    insert_instances(
        &mut tx,
        check.project_id,
        check.user_id,
        check.flavor,
        count,
    )
    .await;
    tx.commit().await.map_err(novum_db::DbError::from)?;
    Ok(count)
}

async fn set(quota: &Quota, project: &str, user: Option<&str>, resource: Resource, limit: i64) {
    let mut conn = quota.db().pool().acquire().await.expect("connection");
    store::set_limit(&mut conn, project, user, resource, limit)
        .await
        .expect("set limit");
}

fn denial_message(result: Result<u32, QuotaError>) -> String {
    match result {
        Err(QuotaError::Exceeded { message, .. }) => message,
        other => panic!("expected a quota denial, got {other:?}"),
    }
}

#[tokio::test]
async fn limits_are_looked_up_user_then_project_then_default_class_then_config() {
    for (name, db) in databases().await {
        let quota = standard(&db);
        let mut conn = db.pool().acquire().await.expect("connection");
        let limits = quota.project_limits(&mut conn, "p1").await.expect("limits");
        assert_eq!(limits[&Resource::Instances], 10, "{name}: config default");
        assert_eq!(limits[&Resource::Ram], 51200, "{name}");
        assert_eq!(limits[&Resource::FloatingIps], -1, "{name}");

        store::set_class_limit(&mut conn, "default", Resource::Instances, 15)
            .await
            .expect("class");
        store::set_class_limit(&mut conn, "gold", Resource::Instances, 99)
            .await
            .expect("class");
        assert_eq!(
            quota.project_limits(&mut conn, "p1").await.expect("limits")[&Resource::Instances],
            15,
            "{name}: default class"
        );
        assert_eq!(
            quota.defaults(&mut conn).await.expect("defaults")[&Resource::Instances],
            15,
            "{name}"
        );
        assert_eq!(
            quota.class_limits(&mut conn, "gold").await.expect("gold")[&Resource::Instances],
            99,
            "{name}"
        );

        store::set_limit(&mut conn, "p1", None, Resource::Instances, 20)
            .await
            .expect("project");
        store::set_limit(&mut conn, "p1", None, Resource::Cores, -1)
            .await
            .expect("project");
        let project = quota.project_limits(&mut conn, "p1").await.expect("limits");
        assert_eq!(
            (project[&Resource::Instances], project[&Resource::Cores]),
            (20, -1),
            "{name}: project rows"
        );
        assert_eq!(
            quota.project_limits(&mut conn, "p2").await.expect("limits")[&Resource::Instances],
            15,
            "{name}: other project"
        );

        store::set_limit(&mut conn, "p1", Some("u1"), Resource::Instances, 5)
            .await
            .expect("user");
        let user = quota
            .user_limits(&mut conn, "p1", "u1")
            .await
            .expect("limits");
        assert_eq!(
            (user[&Resource::Instances], user[&Resource::Cores]),
            (5, -1),
            "{name}: user row, then project row"
        );
        assert_eq!(
            quota
                .user_limits(&mut conn, "p1", "u2")
                .await
                .expect("limits")[&Resource::Instances],
            20,
            "{name}"
        );
        assert_eq!(
            quota.project_limits(&mut conn, "p1").await.expect("limits")[&Resource::Instances],
            20,
            "{name}"
        );

        // Updating a row replaces it; deleting the user's rows falls back.
        store::set_limit(&mut conn, "p1", Some("u1"), Resource::Instances, 6)
            .await
            .expect("user");
        assert_eq!(
            quota
                .user_limits(&mut conn, "p1", "u1")
                .await
                .expect("limits")[&Resource::Instances],
            6,
            "{name}"
        );
        store::delete_limits(&mut conn, "p1", Some("u1"))
            .await
            .expect("delete user");
        assert_eq!(
            quota
                .user_limits(&mut conn, "p1", "u1")
                .await
                .expect("limits")[&Resource::Instances],
            20,
            "{name}"
        );
        // Deleting the project's rows removes its users' too.
        store::set_limit(&mut conn, "p1", Some("u1"), Resource::Instances, 5)
            .await
            .expect("user");
        store::delete_limits(&mut conn, "p1", None)
            .await
            .expect("delete project");
        assert_eq!(
            quota
                .user_limits(&mut conn, "p1", "u1")
                .await
                .expect("limits")[&Resource::Instances],
            15,
            "{name}"
        );
    }
}

#[tokio::test]
async fn settable_ranges_follow_usage_and_user_limits() {
    for (name, db) in databases().await {
        let quota = standard(&db);
        let small = flavor("small", 2, 1024, &[]);
        assert_eq!(
            create(&quota, &check("p1", "u1", &small, 3, 3))
                .await
                .expect("fits"),
            3,
            "{name}"
        );
        let mut conn = db.pool().acquire().await.expect("connection");
        let ranges = quota.settable(&mut conn, "p1", None).await.expect("ranges");
        assert_eq!(ranges[&Resource::Instances], (3, -1), "{name}");
        assert_eq!(ranges[&Resource::Cores], (6, -1), "{name}");
        store::set_limit(&mut conn, "p1", Some("u2"), Resource::Instances, 5)
            .await
            .expect("user");
        store::set_limit(&mut conn, "p1", Some("u3"), Resource::Instances, 2)
            .await
            .expect("user");
        assert_eq!(
            quota.settable(&mut conn, "p1", None).await.expect("ranges")[&Resource::Instances],
            (7, -1),
            "{name}"
        );
        // u2 may go up to 10 - (5 + 2) + 5 = 8; u1 (no row) to 3, at least its 3 in use.
        assert_eq!(
            quota
                .settable(&mut conn, "p1", Some("u2"))
                .await
                .expect("ranges")[&Resource::Instances],
            (0, 8),
            "{name}"
        );
        assert_eq!(
            quota
                .settable(&mut conn, "p1", Some("u1"))
                .await
                .expect("ranges")[&Resource::Instances],
            (3, 3),
            "{name}"
        );
        let usage = quota
            .usage(&mut conn, "p1", Some("u1"))
            .await
            .expect("usage");
        assert_eq!(
            (
                usage[&Resource::Instances],
                usage[&Resource::Cores],
                usage[&Resource::Ram]
            ),
            (3, 6, 3072),
            "{name}"
        );
        assert_eq!(
            quota
                .usage(&mut conn, "p1", Some("u2"))
                .await
                .expect("usage")[&Resource::Instances],
            0,
            "{name}"
        );
    }
}

/// 500 concurrent creates of one instance each at a project: every one runs
/// the serialized check + insert; returns (created, denial messages, elapsed).
async fn race(
    quota: &Arc<Quota>,
    project: &'static str,
    flavors: &[Flavor],
) -> (u32, Vec<String>, Duration) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..500)
        .map(|index| {
            let quota = Arc::clone(quota);
            let flavor = flavors[index % flavors.len()].clone();
            tokio::spawn(async move { create(&quota, &check(project, "u1", &flavor, 1, 1)).await })
        })
        .collect();
    let mut created = 0;
    let mut denials = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            Ok(count) => created += count,
            Err(QuotaError::Exceeded { message, .. }) => denials.push(message),
            Err(other) => panic!("unexpected failure: {other}"),
        }
    }
    (created, denials, started.elapsed())
}

async fn rows(db: &Db, project: &str) -> (i64, i64) {
    let row: (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), CAST(COALESCE(SUM(vcpus), 0) AS BIGINT) FROM instances WHERE project_id = $1 AND deleted = 0",
    )
    .bind(project)
    .fetch_one(db.pool())
    .await
    .expect("count");
    row
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_concurrent_creates_never_exceed_the_instance_quota() {
    for (name, db) in databases().await {
        let quota = Arc::new(standard(&db));
        set(&quota, "race", None, Resource::Instances, 100).await;
        set(&quota, "race", None, Resource::Cores, -1).await;
        set(&quota, "race", None, Resource::Ram, -1).await;
        let (created, denials, elapsed) = race(&quota, "race", &[flavor("tiny", 1, 64, &[])]).await;
        println!("{name}: 500 concurrent creates, instance quota 100: {elapsed:?}");
        assert_eq!(created, 100, "{name}");
        assert_eq!(denials.len(), 400, "{name}");
        for message in &denials {
            assert_eq!(
                message,
                "Quota exceeded for instances: Requested 1, but already used 100 of 100 instances",
                "{name}"
            );
        }
        assert_eq!(rows(&db, "race").await.0, 100, "{name}: rows");
        let mut conn = db.pool().acquire().await.expect("connection");
        assert_eq!(
            quota.usage(&mut conn, "race", None).await.expect("usage")[&Resource::Instances],
            100,
            "{name}: usage = rows"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_concurrent_creates_of_mixed_flavors_never_exceed_the_core_quota() {
    for (name, db) in databases().await {
        let quota = Arc::new(standard(&db));
        set(&quota, "cores", None, Resource::Instances, -1).await;
        set(&quota, "cores", None, Resource::Cores, 100).await;
        set(&quota, "cores", None, Resource::Ram, -1).await;
        let flavors = [
            flavor("one", 1, 64, &[]),
            flavor("two", 2, 64, &[]),
            flavor("four", 4, 64, &[]),
        ];
        let (created, denials, elapsed) = race(&quota, "cores", &flavors).await;
        println!("{name}: 500 concurrent creates of 1/2/4 vCPUs, core quota 100: {elapsed:?}");
        let (count, cores) = rows(&db, "cores").await;
        assert_eq!(i64::from(created), count, "{name}");
        assert_eq!(denials.len() as i64, 500 - count, "{name}");
        assert!(cores <= 100, "{name}: {cores} cores committed");
        // Demand (≈1166 cores) exceeds the limit, so the headroom left is
        // smaller than the largest flavor.
        assert!(cores > 96, "{name}: {cores} cores committed");
        for message in &denials {
            assert!(
                message.starts_with("Quota exceeded for cores: Requested "),
                "{name}: {message}"
            );
            assert!(message.ends_with(" of 100 cores"), "{name}: {message}");
        }
        let mut conn = db.pool().acquire().await.expect("connection");
        assert_eq!(
            quota.usage(&mut conn, "cores", None).await.expect("usage")[&Resource::Cores],
            cores,
            "{name}"
        );
    }
}

#[tokio::test]
async fn min_and_max_count_create_as_many_as_fit() {
    for (name, db) in databases().await {
        let quota = standard(&db);
        let small = flavor("small", 1, 512, &[]);
        assert_eq!(
            create(&quota, &check("p1", "u1", &small, 7, 7))
                .await
                .expect("fits"),
            7,
            "{name}"
        );
        // 3 of 10 instances left: max 5 becomes 3 when min allows.
        assert_eq!(
            create(&quota, &check("p1", "u1", &small, 1, 5))
                .await
                .expect("some fit"),
            3,
            "{name}"
        );
        assert_eq!(rows(&db, "p1").await.0, 10, "{name}");
        let message = denial_message(create(&quota, &check("p1", "u1", &small, 1, 2)).await);
        assert_eq!(
            message,
            "Quota exceeded for instances: Requested 2, but already used 10 of 10 instances",
            "{name}"
        );

        // Cores bound the count too: 20 cores, 4 per instance → 5 fit.
        let big = flavor("big", 4, 512, &[]);
        let fitting = create(&quota, &check("p2", "u1", &big, 2, 8))
            .await
            .expect("fits");
        assert_eq!(fitting, 5, "{name}");
        let message = denial_message(create(&quota, &check("p3", "u1", &big, 6, 8)).await);
        assert_eq!(
            message, "Quota exceeded for cores: Requested 32, but already used 0 of 20 cores",
            "{name}"
        );
        assert_eq!(rows(&db, "p3").await.0, 0, "{name}: nothing created");
    }
}

#[tokio::test]
async fn per_user_limits_apply_beside_the_projects() {
    for (name, db) in databases().await {
        let quota = standard(&db);
        set(&quota, "p1", Some("u1"), Resource::Instances, 2).await;
        let small = flavor("small", 1, 512, &[]);
        assert_eq!(
            create(&quota, &check("p1", "u1", &small, 2, 2))
                .await
                .expect("fits"),
            2,
            "{name}"
        );
        let message = denial_message(create(&quota, &check("p1", "u1", &small, 1, 1)).await);
        assert_eq!(
            message, "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances",
            "{name}"
        );
        // Another user still has the project's room.
        assert_eq!(
            create(&quota, &check("p1", "u2", &small, 8, 8))
                .await
                .expect("fits"),
            8,
            "{name}"
        );
        let message = denial_message(create(&quota, &check("p1", "u2", &small, 1, 1)).await);
        assert_eq!(
            message,
            "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances",
            "{name}"
        );
    }
}

#[tokio::test]
async fn key_pairs_server_groups_and_metadata_are_checked() {
    for (name, db) in databases().await {
        let quota = standard(&db);
        set(&quota, "p1", None, Resource::KeyPairs, 2).await;
        set(&quota, "p1", None, Resource::ServerGroups, 1).await;
        for index in 0..3 {
            let mut tx = quota.begin("p1").await.expect("tx");
            let result = quota.check_key_pairs(&mut tx, "p1", "u1", 1, "req").await;
            if index < 2 {
                result.expect("key pair fits");
                sqlx::query("INSERT INTO keypairs (user_id, name, public_key, fingerprint, key_type, created_at, id) VALUES ($1, $2, 'k', 'f', 'ssh', $3, $4)")
                    .bind("u1")
                    .bind(format!("key{index}"))
                    .bind(novum_db::now())
                    .bind(i64::from(index))
                    .execute(&mut *tx)
                    .await
                    .expect("insert key pair");
                tx.commit().await.expect("commit");
            } else {
                let Err(QuotaError::Exceeded { message, .. }) = result else {
                    panic!("{name}: third key pair allowed")
                };
                assert_eq!(
                    message,
                    "Quota exceeded for key_pairs: Requested 1, but already used 2 of 2 key_pairs",
                    "{name}"
                );
            }
        }
        let mut tx = quota.begin("p1").await.expect("tx");
        quota
            .check_server_groups(&mut tx, "p1", "u1", "req")
            .await
            .expect("first group fits");
        sqlx::query("INSERT INTO server_groups (uuid, name, policy, project_id, user_id, created_at) VALUES ('g1', 'g', 'affinity', 'p1', 'u1', $1)")
            .bind(novum_db::now())
            .execute(&mut *tx)
            .await
            .expect("insert group");
        tx.commit().await.expect("commit");
        let mut tx = quota.begin("p1").await.expect("tx");
        let Err(QuotaError::Exceeded { message, .. }) =
            quota.check_server_groups(&mut tx, "p1", "u1", "req").await
        else {
            panic!("{name}: second group allowed")
        };
        assert_eq!(
            message,
            "Quota exceeded for server_groups: Requested 1, but already used 1 of 1 server_groups",
            "{name}"
        );
        drop(tx);

        // Group members: 10 by default, counted per group and user.
        let small = flavor("small", 0, 0, &[]);
        set(&quota, "p1", None, Resource::Instances, -1).await;
        let mut in_group = check("p1", "u1", &small, 1, 11);
        in_group.group = Some("g1");
        let mut tx = quota.begin("p1").await.expect("tx");
        let allowed = quota
            .check_instances(&mut tx, &in_group)
            .await
            .expect("ten fit");
        assert_eq!(allowed, 10, "{name}");

        let mut conn = db.pool().acquire().await.expect("connection");
        quota
            .check_absolute(&mut conn, "p1", "u1", Resource::MetadataItems, 128, "req")
            .await
            .expect("128 items fit");
        let Err(QuotaError::Exceeded { message, .. }) = quota
            .check_absolute(&mut conn, "p1", "u1", Resource::MetadataItems, 129, "req")
            .await
        else {
            panic!("{name}: 129 metadata items allowed")
        };
        assert_eq!(
            message,
            "Quota exceeded for metadata_items: Requested 129, but already used 0 of 128 metadata_items",
            "{name}"
        );
    }
}

fn plugin_table(entries: &[(&str, PluginConfig)]) -> PluginsConfig {
    let mut config = common::plugins_config();
    for (name, plugin) in entries {
        config.plugins.insert((*name).to_string(), plugin.clone());
    }
    config
}

fn with_config(plugin: PluginConfig, pairs: &[(&str, toml::Value)]) -> PluginConfig {
    let mut table = toml::Table::new();
    for (key, value) in pairs {
        table.insert((*key).to_string(), value.clone());
    }
    PluginConfig {
        config: table,
        ..plugin
    }
}

#[tokio::test]
async fn flavor_class_and_burst_policies_decide_through_wasm() {
    let (_, db) = databases().await.remove(0);
    let gpu_class = with_config(
        PluginConfig::default(),
        &[
            ("extra_spec", "resources:VGPU".into()),
            ("max_instances", 2.into()),
        ],
    );
    let quota = quota(
        &db,
        &["flavor-class-quota-policy", "standard-quota-policy"],
        plugin_table(&[("flavor-class-quota-policy", gpu_class)]),
    );
    let gpu = flavor("gpu", 1, 512, &[("resources:VGPU", "1")]);
    let plain = flavor("plain", 1, 512, &[]);
    assert_eq!(
        create(&quota, &check("p1", "u1", &gpu, 2, 2))
            .await
            .expect("two GPUs"),
        2
    );
    let message = denial_message(create(&quota, &check("p1", "u1", &gpu, 1, 1)).await);
    assert_eq!(
        message,
        "Quota exceeded for instances of flavors with resources:VGPU: Requested 1, but already used 2 of 2 instances"
    );
    assert_eq!(
        create(&quota, &check("p1", "u1", &plain, 8, 8))
            .await
            .expect("plain ones"),
        8
    );
    // Both policies would deny: the first configured wins.
    let message = denial_message(create(&quota, &check("p1", "u1", &gpu, 1, 1)).await);
    assert!(message.contains("flavors with resources:VGPU"), "{message}");
    let set = quota.plugins().current();
    let policy = set.plugin("flavor-class-quota-policy").expect("loaded");
    assert_eq!(policy.metrics().snapshot().calls, 4);

    let burst = with_config(
        PluginConfig::default(),
        &[("max_creates", 3.into()), ("window_seconds", 60.into())],
    );
    let quota = quota_with(
        &db,
        &["standard-quota-policy", "burst-quota-policy"],
        &[("burst-quota-policy", burst)],
    );
    let tiny = flavor("tiny", 0, 0, &[]);
    for _ in 0..3 {
        create(&quota, &check("p9", "u1", &tiny, 1, 1))
            .await
            .expect("within the burst");
    }
    let message = denial_message(create(&quota, &check("p9", "u1", &tiny, 1, 1)).await);
    assert_eq!(
        message,
        "Quota exceeded for create_requests: at most 3 server create requests per 60 seconds"
    );
    // Another project has its own window.
    create(&quota, &check("p8", "u1", &tiny, 1, 1))
        .await
        .expect("other project");
}

fn quota_with(db: &Db, policies: &[&str], tables: &[(&str, PluginConfig)]) -> Quota {
    quota(db, policies, plugin_table(tables))
}

fn misbehaving(mode: &str, on_error: Option<OnError>) -> PluginConfig {
    let plugin = PluginConfig {
        on_error,
        deadline_ms: Some(30),
        memory_limit_mib: Some(16),
        ..common::test_plugin("misbehaving-quota-policy")
    };
    with_config(plugin, &[("mode", mode.into())])
}

#[tokio::test]
async fn a_failing_policy_follows_its_on_error() {
    let (_, db) = databases().await.remove(0);
    let tiny = flavor("tiny", 1, 64, &[]);
    for mode in ["loop", "alloc", "panic"] {
        // Default on_error: the request is denied, naming the plugin.
        let quota = quota_with(
            &db,
            &["misbehaving", "standard-quota-policy"],
            &[("misbehaving", misbehaving(mode, None))],
        );
        let started = Instant::now();
        let result = create(&quota, &check("p1", "u1", &tiny, 1, 1)).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{mode}: contained quickly"
        );
        match result {
            Err(error @ QuotaError::PolicyFailed { .. }) => {
                let message = error.to_string();
                assert!(
                    message.starts_with("Quota check failed: quota policy misbehaving failed: "),
                    "{mode}: {message}"
                );
            }
            other => panic!("{mode}: expected a policy failure, got {other:?}"),
        }
        let quota = quota_with(
            &db,
            &["misbehaving", "standard-quota-policy"],
            &[("misbehaving", misbehaving(mode, Some(OnError::FailRequest)))],
        );
        assert!(
            matches!(
                create(&quota, &check("p1", "u1", &tiny, 1, 1)).await,
                Err(QuotaError::PolicyFailed { .. })
            ),
            "{mode}"
        );

        // ignore: skipped; the standard policy still decides.
        let quota = quota_with(
            &db,
            &["misbehaving", "standard-quota-policy"],
            &[("misbehaving", misbehaving(mode, Some(OnError::Ignore)))],
        );
        assert_eq!(
            create(&quota, &check("p-ignore", "u1", &tiny, 1, 1))
                .await
                .expect("ignored"),
            1,
            "{mode}"
        );
        let policy = quota
            .plugins()
            .current()
            .plugin("misbehaving")
            .cloned()
            .expect("loaded");
        assert_eq!(
            policy.metrics().snapshot().error_count(),
            1,
            "{mode}: counted"
        );
    }
    assert_eq!(
        rows(&db, "p1").await.0,
        0,
        "failed policies never allowed a create"
    );
    let ignored = rows(&db, "p-ignore").await.0;
    assert_eq!(ignored, 3);
    set(&standard(&db), "p-ignore", None, Resource::Instances, 3).await;
    let quota = quota_with(
        &db,
        &["misbehaving", "standard-quota-policy"],
        &[("misbehaving", misbehaving("panic", Some(OnError::Ignore)))],
    );
    let message = denial_message(create(&quota, &check("p-ignore", "u1", &tiny, 1, 1)).await);
    assert_eq!(
        message,
        "Quota exceeded for instances: Requested 1, but already used 3 of 3 instances"
    );

    // A well-behaved denial from the same plugin is a denial, not a failure.
    let quota = quota_with(
        &db,
        &["misbehaving"],
        &[("misbehaving", misbehaving("deny", None))],
    );
    let message = denial_message(create(&quota, &check("p2", "u1", &tiny, 1, 1)).await);
    assert_eq!(message, "misbehaving policy denies create for p2");

    // No policies configured: allowed.
    let quota = quota_with(&db, &[], &[]);
    assert_eq!(
        create(&quota, &check("p3", "u1", &tiny, 50, 50))
            .await
            .expect("no policies"),
        50
    );
}
