//! `novum bench host-state`: what a scheduling decision pays to know the
//! cloud, the whole read every decision used to make ([`snapshot::load`])
//! against the in-memory host state ([`HostStateCache`]) brought up to date
//! after one placement, measured side by side in one run on the same
//! database (a fresh SQLite file, or PostgreSQL when given).

use std::time::{Duration, Instant};

use novum_db::{self as db, Db, DbError};

use crate::conductor::host_state::HostStateCache;
use crate::conductor::snapshot;

/// The figures of one cloud size.
#[derive(Clone, Debug)]
pub struct HostStateRow {
    /// Compute hosts.
    pub hosts: usize,
    /// Live instances placed on them.
    pub instances: usize,
    /// Mean time of a whole read, as every decision used to make.
    pub whole_read: Duration,
    /// Mean time to bring the cache up to date after one placement (a
    /// node's usage bumped and an instance put on it), as a decision now
    /// does.
    pub after_placement: Duration,
    /// Mean time of a refresh when nothing changed.
    pub unchanged: Duration,
}

/// Fills `db` with `hosts` compute hosts (services and nodes) and
/// `instances_per_host` live instances on each.
async fn seed(db: &Db, hosts: usize, instances_per_host: usize) -> Result<(), DbError> {
    let now = db::now();
    let mut tx = db.begin().await?;
    for index in 0..hosts {
        let host = format!("bench-{index:05}");
        let service_id = db::insert_returning_id(
            &mut tx,
            sqlx::query(
                "INSERT INTO services (uuid, host, binary_name, topic, last_seen_up, created_at, updated_at) \
                 VALUES ($1, $2, 'nova-compute', 'compute', $3, $3, $3) RETURNING id",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(&host)
            .bind(&now),
        )
        .await?;
        sqlx::query(
            "INSERT INTO compute_nodes (uuid, service_id, host, hypervisor_hostname, vcpus, memory_mb, local_gb, \
             vcpus_used, memory_mb_used, local_gb_used, running_vms, hypervisor_type, hypervisor_version, cpu_info, \
             supported_instances, created_at, updated_at) \
             VALUES ($1, $2, $3, $3, 64, 262144, 2000, $4, $5, $6, $7, 'QEMU', 7002000, \
             '{\"arch\":\"x86_64\",\"features\":[\"sse4.2\",\"avx\",\"avx2\"]}', \
             '[{\"arch\":\"x86_64\",\"hv_type\":\"qemu\",\"vm_mode\":\"hvm\"}]', $8, $8)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(service_id)
        .bind(&host)
        .bind(instances_per_host as i64)
        .bind(instances_per_host as i64 * 512)
        .bind(instances_per_host as i64)
        .bind(instances_per_host as i64)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        for _ in 0..instances_per_host {
            insert_instance(&mut tx, &host, &now).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// One live m1.tiny-like instance on `host`.
async fn insert_instance(tx: &mut db::Tx, host: &str, now: &str) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO instances (uuid, display_name, project_id, user_id, flavor_id, flavor, image_properties, \
         vm_state, power_state, host, node, reservation_id, created_at, updated_at) \
         VALUES ($1, 'bench', 'bench', 'bench', '1', '{}', '{\"os_type\":\"linux\"}', 'active', 1, $2, $2, \
         'r-bench', $3, $3)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(host)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A placement as a claim writes it: `host`'s usage bumped, an instance
/// put on it.
async fn place_one(db: &Db, host: &str) -> Result<(), DbError> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "UPDATE compute_nodes SET vcpus_used = vcpus_used + 1, memory_mb_used = memory_mb_used + 512, \
         local_gb_used = local_gb_used + 1, running_vms = running_vms + 1, generation = generation + 1 \
         WHERE host = $1",
    )
    .bind(host)
    .execute(&mut *tx)
    .await?;
    insert_instance(&mut tx, host, &db::now()).await?;
    tx.commit().await?;
    Ok(())
}

/// Measures one cloud size on `db` (which must hold no hosts yet), spending
/// about `budget` on each of the three figures.
pub async fn host_state(
    db: &Db,
    hosts: usize,
    instances_per_host: usize,
    budget: Duration,
) -> Result<HostStateRow, DbError> {
    seed(db, hosts, instances_per_host).await?;
    let down_time = 3600;
    let mean = |total: Duration, runs: u32| total / runs.max(1);

    let (mut total, mut runs) = (Duration::ZERO, 0u32);
    while total < budget || runs < 3 {
        let start = Instant::now();
        let whole = snapshot::load(db, "nova", down_time).await?;
        total += start.elapsed();
        runs += 1;
        std::hint::black_box(whole);
    }
    let whole_read = mean(total, runs);

    let cache = HostStateCache::new(db.clone(), "nova", down_time, Duration::from_secs(86_400));
    cache.refresh().await?;
    let (mut total, mut runs) = (Duration::ZERO, 0u32);
    while total < budget || runs < 3 {
        place_one(db, &format!("bench-{:05}", runs as usize % hosts.max(1))).await?;
        let start = Instant::now();
        let (snapshot, _) = cache.refresh().await?;
        total += start.elapsed();
        runs += 1;
        std::hint::black_box(snapshot);
    }
    let after_placement = mean(total, runs);

    let (mut total, mut runs) = (Duration::ZERO, 0u32);
    while total < budget || runs < 3 {
        let start = Instant::now();
        let (snapshot, _) = cache.refresh().await?;
        total += start.elapsed();
        runs += 1;
        std::hint::black_box(snapshot);
    }
    let unchanged = mean(total, runs);
    Ok(HostStateRow {
        hosts,
        instances: hosts * instances_per_host,
        whole_read,
        after_placement,
        unchanged,
    })
}

/// The rows as a table, with the ratio whole read ÷ cached refresh.
pub fn format(rows: &[HostStateRow]) -> String {
    let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
    let mut text = String::from(
        "hosts   instances  whole read (ms)  cache after a placement (ms)  ratio  cache unchanged (ms)\n",
    );
    for row in rows {
        text.push_str(&format!(
            "{:>6}  {:>9}  {:>15.3}  {:>28.3}  {:>5.0}x  {:>20.4}\n",
            row.hosts,
            row.instances,
            ms(row.whole_read),
            ms(row.after_placement),
            ms(row.whole_read) / ms(row.after_placement).max(f64::MIN_POSITIVE),
            ms(row.unchanged),
        ));
    }
    text
}
