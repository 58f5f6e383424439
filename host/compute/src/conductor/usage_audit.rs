//! The instance usage audit (Nova's `instance_usage_audit`): when
//! `[compute] instance_usage_audit` is on, once per completed audit period
//! (`instance_usage_audit_period`: `hour`, `day`, `month` or `year`, with an
//! optional `@offset`) and compute host, every instance that ran on the host
//! during the period is reported with an `instance.exists` notification,
//! and the run is recorded in the task log that `os-instance_usage_audit_log`
//! reads. The controller runs it for every compute host (the instances are
//! in its database); a host's run commits with its notifications, so a
//! period is audited once per host.

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};
use sqlx::Row;

use super::notices;
use super::{Conductor, Result};
use crate::conductor::model::Instance;
use crate::store::services::COMPUTE_BINARY;
use novum_db::{self as db, Db, DbError};
use novum_notify::Publisher;
use novum_notify::builders::{self, RequestContext};
use novum_notify::payload::AuditPeriodPayload;

/// The task log's name of the audit.
pub const AUDIT_TASK: &str = "instance_usage_audit";

/// An audit period unit and its offset (`month@15`: from the 15th).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditPeriod {
    unit: PeriodUnit,
    offset: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeriodUnit {
    Hour,
    Day,
    Month,
    Year,
}

impl std::str::FromStr for AuditPeriod {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let (unit, offset) = match text.split_once('@') {
            Some((unit, offset)) => (
                unit,
                offset
                    .parse::<u32>()
                    .map_err(|_| format!("the offset of audit period {text:?} is not a number"))?,
            ),
            None => (text, 0),
        };
        let unit = match unit {
            "hour" => PeriodUnit::Hour,
            "day" => PeriodUnit::Day,
            "month" => PeriodUnit::Month,
            "year" => PeriodUnit::Year,
            _ => {
                return Err(format!(
                    "audit period {text:?}: the unit is one of hour, day, month, year"
                ));
            }
        };
        let limit = match unit {
            PeriodUnit::Hour => 59,
            PeriodUnit::Day => 23,
            PeriodUnit::Month => 28,
            PeriodUnit::Year => 12,
        };
        if offset > limit {
            return Err(format!(
                "audit period {text:?}: the offset is at most {limit}"
            ));
        }
        Ok(AuditPeriod { unit, offset })
    }
}

/// Midnight UTC of `year-month-day`; `None` when there is no such day.
fn day_start(year: i32, month: u32, day: u32, hour: u32) -> Option<DateTime<Utc>> {
    NaiveDate::from_ymd_opt(year, month, day)
        .and_then(|date| date.and_hms_opt(hour, 0, 0))
        .map(|naive| Utc.from_utc_datetime(&naive))
}

/// The month before `month` of `year`.
fn previous_month(year: i32, month: u32) -> (i32, u32) {
    if month == 1 {
        (year - 1, 12)
    } else {
        (year, month - 1)
    }
}

impl AuditPeriod {
    /// Calendar months from the 1st (Nova's default).
    pub const MONTH: AuditPeriod = AuditPeriod {
        unit: PeriodUnit::Month,
        offset: 0,
    };

    /// The most recently completed period before `now` (Nova's
    /// `last_completed_audit_period`): its beginning and end.
    pub fn last_completed(self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        match self.unit {
            PeriodUnit::Hour => {
                let mut end = now
                    .with_minute(self.offset)?
                    .with_second(0)?
                    .with_nanosecond(0)?;
                if end >= now {
                    end -= chrono::Duration::hours(1);
                }
                Some((end - chrono::Duration::hours(1), end))
            }
            PeriodUnit::Day => {
                let mut end = day_start(now.year(), now.month(), now.day(), self.offset)?;
                if end >= now {
                    end -= chrono::Duration::days(1);
                }
                Some((end - chrono::Duration::days(1), end))
            }
            PeriodUnit::Month => {
                let day = self.offset.max(1);
                let mut end = day_start(now.year(), now.month(), day, 0)?;
                if end >= now {
                    let (year, month) = previous_month(now.year(), now.month());
                    end = day_start(year, month, day, 0)?;
                }
                let (year, month) = previous_month(end.year(), end.month());
                Some((day_start(year, month, day, 0)?, end))
            }
            PeriodUnit::Year => {
                let month = self.offset.max(1);
                let mut end = day_start(now.year(), month, 1, 0)?;
                if end >= now {
                    end = day_start(now.year() - 1, month, 1, 0)?;
                }
                Some((day_start(end.year() - 1, month, 1, 0)?, end))
            }
        }
    }
}

/// One host's run of a periodic task in a period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskLog {
    /// The compute host.
    pub host: String,
    /// `RUNNING` or `DONE`.
    pub state: String,
    /// Instances it covered.
    pub task_items: i64,
    /// Instances it failed on.
    pub errors: i64,
    /// What it says about the run.
    pub message: String,
}

/// The runs of task `task_name` for the period `[begin, end)`.
pub async fn task_logs(
    db: &Db,
    task_name: &str,
    begin: DateTime<Utc>,
    end: DateTime<Utc>,
) -> std::result::Result<Vec<TaskLog>, DbError> {
    let rows = sqlx::query(
        "SELECT host, state, task_items, errors, message FROM task_log \
         WHERE task_name = $1 AND period_beginning = $2 AND period_ending = $3 ORDER BY host",
    )
    .bind(task_name)
    .bind(db::timestamp(begin))
    .bind(db::timestamp(end))
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(TaskLog {
                host: row.try_get("host")?,
                state: row.try_get("state")?,
                task_items: row.try_get("task_items")?,
                errors: row.try_get("errors")?,
                message: row.try_get("message")?,
            })
        })
        .collect()
}

/// The audit period as notifications carry it.
fn audit_period_payload(begin: DateTime<Utc>, end: DateTime<Utc>) -> AuditPeriodPayload {
    let shown = |time: DateTime<Utc>| time.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    AuditPeriodPayload {
        audit_period_beginning: shown(begin),
        audit_period_ending: shown(end),
    }
}

impl Conductor {
    /// Audits the last completed period on every compute host not audited
    /// for it yet (nothing when the audit is off); returns the hosts
    /// audited.
    pub async fn audit_usage(self: &Arc<Self>) -> Result<usize> {
        if !self.compute.instance_usage_audit {
            return Ok(0);
        }
        let Some((begin, end)) = self
            .compute
            .audit_period()
            .and_then(|period| period.last_completed(Utc::now()))
        else {
            return Ok(0);
        };
        let hosts: Vec<String> = sqlx::query(
            "SELECT DISTINCT host FROM services WHERE binary_name = $1 AND host NOT IN \
             (SELECT host FROM task_log WHERE task_name = $2 AND period_beginning = $3 AND period_ending = $4) \
             ORDER BY host",
        )
        .bind(COMPUTE_BINARY)
        .bind(AUDIT_TASK)
        .bind(db::timestamp(begin))
        .bind(db::timestamp(end))
        .fetch_all(self.db.pool())
        .await?
        .iter()
        .map(|row| row.try_get("host"))
        .collect::<std::result::Result<_, _>>()?;
        for host in &hosts {
            self.audit_host(host, begin, end).await?;
        }
        Ok(hosts.len())
    }

    /// One host's audit: an `instance.exists` per instance that ran there
    /// in the period, and its task log row, in one transaction.
    async fn audit_host(&self, host: &str, begin: DateTime<Utc>, end: DateTime<Utc>) -> Result<()> {
        let started = std::time::Instant::now();
        let mut tx = self.db.begin_serialized("conductor").await?;
        let (from, to) = (db::timestamp(begin), db::timestamp(end));
        let instances = sqlx::query_as::<_, Instance>(
            "SELECT * FROM instances WHERE host = $1 AND (terminated_at IS NULL OR terminated_at > $2) \
             AND launched_at < $3 ORDER BY uuid",
        )
        .bind(host)
        .bind(&from)
        .bind(&to)
        .fetch_all(&mut *tx)
        .await?;
        let publisher = Publisher::compute(host);
        let context = RequestContext::default();
        for instance in &instances {
            let notification = builders::instance_exists(
                &publisher,
                &notices::instance_info(instance),
                audit_period_payload(begin, end),
                &context,
            );
            notices::send(&mut tx, &notification).await?;
        }
        let now = db::now();
        sqlx::query(
            "INSERT INTO task_log (task_name, host, period_beginning, period_ending, state, task_items, errors, \
             message, created_at, updated_at) VALUES ($1, $2, $3, $4, 'DONE', $5, 0, $6, $7, $7)",
        )
        .bind(AUDIT_TASK)
        .bind(host)
        .bind(&from)
        .bind(&to)
        .bind(i64::try_from(instances.len()).unwrap_or(i64::MAX))
        .bind(format!(
            "Instance usage audit ran for host {host}, {} instances in {} seconds.",
            instances.len(),
            started.elapsed().as_secs_f64()
        ))
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        novum_notify::commit(tx).await?;
        tracing::info!(host, instances = instances.len(), %begin, %end, "instance usage audited");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("a valid time")
            .with_timezone(&Utc)
    }

    fn last(period: &str, now: &str) -> (String, String) {
        let period: AuditPeriod = period.parse().expect("a valid period");
        let (begin, end) = period.last_completed(at(now)).expect("a period");
        (begin.to_rfc3339(), end.to_rfc3339())
    }

    #[test]
    fn the_last_completed_period_ends_before_now() {
        assert_eq!(
            last("month", "2026-12-05T22:00:00Z"),
            (
                "2026-11-01T00:00:00+00:00".into(),
                "2026-12-01T00:00:00+00:00".into()
            )
        );
        assert_eq!(
            last("month", "2026-01-01T00:00:00Z"),
            (
                "2025-11-01T00:00:00+00:00".into(),
                "2025-12-01T00:00:00+00:00".into()
            )
        );
        assert_eq!(
            last("month@15", "2026-03-10T00:00:00Z"),
            (
                "2026-01-15T00:00:00+00:00".into(),
                "2026-02-15T00:00:00+00:00".into()
            )
        );
        assert_eq!(
            last("day", "2026-12-05T22:00:00Z"),
            (
                "2026-12-04T00:00:00+00:00".into(),
                "2026-12-05T00:00:00+00:00".into()
            )
        );
        assert_eq!(
            last("day@18", "2026-12-05T10:00:00Z"),
            (
                "2026-12-03T18:00:00+00:00".into(),
                "2026-12-04T18:00:00+00:00".into()
            )
        );
        assert_eq!(
            last("hour", "2026-12-05T22:30:00Z"),
            (
                "2026-12-05T21:00:00+00:00".into(),
                "2026-12-05T22:00:00+00:00".into()
            )
        );
        assert_eq!(
            last("year@3", "2026-12-05T22:00:00Z"),
            (
                "2025-03-01T00:00:00+00:00".into(),
                "2026-03-01T00:00:00+00:00".into()
            )
        );
    }

    #[test]
    fn bad_periods_are_refused() {
        for bad in ["week", "month@x", "day@24", "hour@60", "year@13"] {
            assert!(bad.parse::<AuditPeriod>().is_err(), "{bad}");
        }
    }
}
