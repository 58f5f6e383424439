//! The scheduler's in-memory host state (`conductor::host_state`), on SQLite
//! and PostgreSQL: after every kind of change the database's triggers log —
//! a heartbeat that changes nothing, a server placed and deleted, an
//! aggregate with a zone, a service disabled — the cached snapshot equals
//! the cloud read whole from the database, and only what changed was re-read.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use novum_compute::conductor::host_state::{HostStateCache, Refresh};
use novum_compute::conductor::snapshot;
use novum_db::Db;
use novum_scheduler::CloudSnapshot;

use crate::api_common::backends;
use crate::compute::{Cloud, IMAGE, cloud_on};

/// The down time the cache and the comparison both use.
const DOWN_TIME: u64 = 60;

/// Refreshes `cache`, checks the snapshot against a whole read of `db`, and
/// answers what the refresh re-read.
async fn refreshed(cache: &HostStateCache, db: &Db) -> (Arc<CloudSnapshot>, Refresh) {
    let (cached, refresh) = cache.refresh().await.expect("refresh");
    let whole = snapshot::load(db, "nova", DOWN_TIME).await.expect("load");
    assert_eq!(
        cached.hosts(),
        whole.hosts(),
        "cached hosts differ from the database"
    );
    assert_eq!(cached.aggregates(), whole.aggregates());
    (cached, refresh)
}

async fn admin(
    cloud: &Cloud,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let (status, body) = cloud
        .call(Some("admin"), method, path, Some(body), None)
        .await;
    assert!(status.is_success(), "{method} {path}: {status} {body}");
    body
}

/// A server created by a member (placed once its host's agent spawns it).
async fn create_server(cloud: &Cloud) -> String {
    let (status, body) = cloud
        .create(
            "member",
            json!({"server": {"name": "s", "imageRef": IMAGE, "flavorRef": "1", "networks": "none"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["server"]["id"].as_str().expect("id").to_string()
}

async fn follows_every_change(backend: &crate::api_common::Backend) {
    let cloud = cloud_on(backend).await;
    let db = &cloud.state.db;
    let token = cloud.register("h1", 8, 16384).await;
    let token_h2 = cloud.register("h2", 8, 16384).await;
    let cache = HostStateCache::new(db.clone(), "nova", DOWN_TIME, Duration::from_secs(3600));

    let (first, refresh) = refreshed(&cache, db).await;
    assert!(refresh.full, "{refresh:?}");
    assert_eq!(first.hosts().len(), 2);

    // Nothing changed: the same snapshot, nothing re-read.
    let (again, refresh) = refreshed(&cache, db).await;
    assert_eq!(refresh, Refresh::default());
    assert!(
        Arc::ptr_eq(&first, &again),
        "an unchanged cloud makes a new snapshot"
    );

    // A heartbeat reporting the same inventory logs nothing.
    let status = cloud
        .heartbeat("h2", &token_h2, (8, 16384), Vec::new())
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, refresh) = refreshed(&cache, db).await;
    assert_eq!(refresh.hosts_reread, 0, "{refresh:?}");

    // A server placed on h1: h1 alone is re-read, with its usage and instance.
    let id = create_server(&cloud).await;
    cloud.spawn_active("h1", &token, &id).await;
    let (placed, refresh) = refreshed(&cache, db).await;
    assert!(!refresh.full && refresh.hosts_reread >= 1, "{refresh:?}");
    let h1 = placed
        .hosts()
        .iter()
        .find(|host| host.name == "h1")
        .expect("h1");
    assert_eq!(h1.vcpus_used, 1);
    assert_eq!(h1.instances.len(), 1);
    assert_eq!(h1.instances[0].uuid, id);
    let h2_before = first
        .hosts()
        .iter()
        .find(|host| host.name == "h2")
        .expect("h2");
    let h2_after = placed
        .hosts()
        .iter()
        .find(|host| host.name == "h2")
        .expect("h2");
    assert!(
        Arc::ptr_eq(h2_before, h2_after),
        "an unchanged host was copied"
    );

    // An aggregate with a zone, h1 in it: every host's zone is re-derived.
    let aggregate = admin(
        &cloud,
        "POST",
        "/compute/v2.1/os-aggregates",
        json!({"aggregate": {"name": "rack1", "availability_zone": "az1"}}),
    )
    .await;
    let aggregate_id = aggregate["aggregate"]["id"].as_i64().expect("id");
    admin(
        &cloud,
        "POST",
        &format!("/compute/v2.1/os-aggregates/{aggregate_id}/action"),
        json!({"add_host": {"host": "h1"}}),
    )
    .await;
    let (zoned, refresh) = refreshed(&cache, db).await;
    assert!(refresh.aggregates_reread, "{refresh:?}");
    let h1 = zoned
        .hosts()
        .iter()
        .find(|host| host.name == "h1")
        .expect("h1");
    assert_eq!(h1.availability_zone, "az1");
    assert_eq!(h1.aggregates, vec![aggregate_id as u32]);

    // h2's service disabled.
    admin(
        &cloud,
        "PUT",
        "/compute/v2.1/os-services/disable",
        json!({"host": "h2", "binary": "nova-compute"}),
    )
    .await;
    let (disabled, refresh) = refreshed(&cache, db).await;
    assert_eq!(refresh.hosts_reread, 1, "{refresh:?}");
    let h2 = disabled
        .hosts()
        .iter()
        .find(|host| host.name == "h2")
        .expect("h2");
    assert!(h2.service_disabled);

    // The server deleted: h1 is empty again.
    cloud.delete_done("h1", &token, &id).await;
    let (emptied, _) = refreshed(&cache, db).await;
    let h1 = emptied
        .hosts()
        .iter()
        .find(|host| host.name == "h1")
        .expect("h1");
    assert_eq!((h1.vcpus_used, h1.instances.len()), (0, 0));

    // The log is pruned by age only: nothing here is old enough.
    let pruned = novum_compute::conductor::host_state::prune_changes(db)
        .await
        .expect("prune");
    assert_eq!(pruned, 0);
}

#[tokio::test]
async fn host_state_follows_every_change_on_each_backend() {
    for backend in backends().await {
        println!("backend {}", backend.name);
        follows_every_change(&backend).await;
    }
}

/// `h1`'s row in `snapshot`.
fn host<'a>(snapshot: &'a CloudSnapshot, name: &str) -> &'a novum_scheduler::HostState {
    snapshot
        .hosts()
        .iter()
        .find(|host| host.name == name)
        .expect("host")
}

/// A decision's reserved choice counts in every snapshot until its claim is
/// read back (or the claim failed), and never hides a committed claim.
async fn reservations_count_until_read_back(backend: &crate::api_common::Backend) {
    let cloud = cloud_on(backend).await;
    let db = &cloud.state.db;
    let token = cloud.register("h1", 8, 16384).await;
    cloud.register("h2", 8, 16384).await;
    let cache = HostStateCache::new(db.clone(), "nova", DOWN_TIME, Duration::from_secs(3600));
    let base = cache.snapshot().await.expect("snapshot");
    let mut request = novum_scheduler::synthetic::request(7, &base).request;
    request.flavor.vcpus = 2;
    request.flavor.memory_mb = 1024;

    // Reserved: h1 counts it, h2 is the base's own.
    let reservation = cache.reserve("h1", &request, "reserved-1");
    let reserved = cache.snapshot().await.expect("snapshot");
    assert_eq!(host(&reserved, "h1").vcpus_used, 2);
    assert_eq!(host(&reserved, "h1").memory_used_mb, 1024);
    assert!(
        host(&reserved, "h1")
            .instances
            .iter()
            .any(|instance| instance.uuid == "reserved-1")
    );
    assert!(Arc::ptr_eq(
        base.hosts().iter().find(|h| h.name == "h2").expect("h2"),
        reserved
            .hosts()
            .iter()
            .find(|h| h.name == "h2")
            .expect("h2"),
    ));
    // Unchanged reservations and base: the same overlay snapshot.
    let again = cache.snapshot().await.expect("snapshot");
    assert!(Arc::ptr_eq(&reserved, &again));

    // Cancelled (its claim failed): gone, the base again.
    reservation.cancel();
    assert_eq!(cache.reservations_held(), 0);
    let cancelled = cache.snapshot().await.expect("snapshot");
    assert_eq!(host(&cancelled, "h1").vcpus_used, 0);

    // Dropped without an answer: cancelled too.
    drop(cache.reserve("h1", &request, "reserved-2"));
    assert_eq!(cache.reservations_held(), 0);

    // A real server placed through the API while a reservation for it is
    // held, then marked committed: the next snapshot reads the claim from
    // the database and drops the reservation (counted once, not twice, not
    // zero times).
    let id = create_server(&cloud).await;
    cloud.spawn_active("h1", &token, &id).await;
    let placed_on = |snapshot: &CloudSnapshot| {
        snapshot
            .hosts()
            .iter()
            .filter(|host| host.instances.iter().any(|instance| instance.uuid == id))
            .count()
    };
    let reservation = cache.reserve("h2", &request, &id);
    let both = cache.snapshot().await.expect("snapshot");
    assert_eq!(
        placed_on(&both),
        2,
        "the claim and the reservation, at most twice"
    );
    reservation.committed();
    assert_eq!(cache.reservations_held(), 1, "kept until the next refresh");
    let (read_back, _) = refreshed(&cache, db).await;
    assert_eq!(placed_on(&read_back), 1);
    let after = cache.snapshot().await.expect("snapshot");
    assert_eq!(cache.reservations_held(), 0);
    assert_eq!(placed_on(&after), 1);
    assert_eq!(host(&after, "h2").vcpus_used, 0);
}

#[tokio::test]
async fn reservations_count_until_read_back_on_each_backend() {
    for backend in backends().await {
        println!("backend {}", backend.name);
        reservations_count_until_read_back(&backend).await;
    }
}
