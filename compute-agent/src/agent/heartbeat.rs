//! When a heartbeat can be left out: the controller already heard
//! everything it would carry.
//!
//! The heartbeat loop wakes every interval, but an idle host's beat says
//! nothing new: the controller writes an inventory only when it changed,
//! reconciles power states only when they changed (and every 600 s), and
//! any request of the agent — its long polls above all — keeps the
//! service up. So a wake sends the beat only when [`Heartbeats::reason`]
//! finds a [`BeatReason`]; at 10,000 hosts that nearly halves the controller's
//! requests at idle.
//!
//! A wake after a skipped beat is timed half an interval past the point
//! where the last request sent turns one interval old
//! ([`delay_after_skip`]): the long polls, re-sent every interval or
//! sooner, then fall between two wakes, and a wake never lands in the
//! moment between a poll's answer and the next poll, where nothing was
//! sent for an interval (the two loops start together, so they would
//! otherwise stay in step there, beating for nothing). When the polls
//! stop, the beat goes one and a half intervals after the last request.

use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::time::{Duration, Instant};

use novum_wire::{InstancePower, Inventory};

use super::client::Contact;

/// Default for [`super::AgentConfig::full_report_every`]: at the
/// controller's default 30 s interval, a full report at least every 5
/// minutes.
pub const DEFAULT_FULL_REPORT_EVERY: u32 = 10;

/// How long the heartbeat loop sleeps after a wake `now` that sent nothing,
/// when the last request was sent at `last_sent` (less than `interval`
/// ago: else the beat went): until half an interval after that request
/// turns one interval old, so the wakes sit half-way between the polls.
/// Between half an interval and one and a half; one interval while the
/// polls go every interval.
pub(super) fn delay_after_skip(
    last_sent: Option<Instant>,
    now: Instant,
    interval: Duration,
) -> Duration {
    let half = interval / 2;
    let next = last_sent.map_or(now + interval, |sent| sent + interval + half);
    next.saturating_duration_since(now)
        .clamp(half, interval + half)
}

/// What a heartbeat reports, without what changes on its own at every beat
/// (the `uptime` line): two equal reports tell the controller the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Report {
    /// The inventory, its `uptime` left out.
    inventory: Inventory,
    /// Every domain's power state, sorted by uuid.
    instances: Vec<InstancePower>,
}

impl Report {
    /// The report of a beat carrying `inventory` and `instances` (sorted by
    /// uuid).
    pub(super) fn of(inventory: &Inventory, instances: &[InstancePower]) -> Self {
        Report {
            inventory: Inventory {
                uptime: None,
                ..inventory.clone()
            },
            instances: instances.to_vec(),
        }
    }
}

/// Why a heartbeat goes (logged at debug level); a wake with none skips it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BeatReason {
    /// Nothing was reported since the agent started or last registered.
    First,
    /// The reconcile loop saw the power states change (`heartbeat_now`).
    Asked,
    /// A request failed (no controller answered, or one answered a server
    /// error) since the last beat: the controller may have restarted and
    /// forgotten what it heard.
    ControllerFailed,
    /// Another controller answers now than the one that heard the last beat.
    OtherController,
    /// No request was sent for an interval (the long polls stalled): the
    /// service stays up on the beats alone.
    Quiet,
    /// The inventory or the power states differ from the last beat's.
    Changed,
    /// The last beat carried a change: the controller reconciles once more
    /// at the beat after (it calls a vanished domain gone on its second
    /// look).
    SecondLook,
    /// A task result was accepted since the last beat: the controller
    /// reconciles the host's power states at its next beat.
    TaskReported,
    /// [`super::AgentConfig::full_report_every`] intervals went by without
    /// a beat: the controller's periodic power-state reconciliation and the
    /// `uptime` it shows ride on beats.
    FullReportDue,
}

/// What the controller heard from the last successful heartbeat, and how
/// many wakes went by without one.
#[derive(Debug)]
pub(super) struct Heartbeats {
    /// A full report at least every this many intervals (1: every wake).
    full_report_every: u32,
    /// The last successful beat's report, and the [`Contact`] as it was.
    last: Option<(Report, Contact)>,
    /// Whether the beat before the last carried the same report.
    heard_twice: bool,
    /// Wakes without a beat since the last.
    skipped: u32,
    /// How many intervals early the first full report goes (from the host
    /// name, below `full_report_every`): hosts started together spread
    /// their full reports over the intervals instead of sending them all
    /// at once.
    head_start: u32,
}

impl Heartbeats {
    /// Nothing heard yet from `host`; a full report at least every
    /// `full_report_every` intervals (0 counts as 1).
    pub(super) fn new(host: &str, full_report_every: u32) -> Self {
        let full_report_every = full_report_every.max(1);
        let mut hasher = DefaultHasher::new();
        host.hash(&mut hasher);
        let head_start =
            u32::try_from(hasher.finish() % u64::from(full_report_every)).unwrap_or_default();
        Heartbeats {
            full_report_every,
            last: None,
            heard_twice: false,
            skipped: 0,
            head_start,
        }
    }

    /// The power states the last successful beat reported.
    pub(super) fn reported_instances(&self) -> Option<&[InstancePower]> {
        self.last
            .as_ref()
            .map(|(report, _)| report.instances.as_slice())
    }

    /// Why a beat with `report` must go at a wake `now` of a loop waking
    /// every `interval`, with the client's `contact` as it is; `None`: the
    /// controller heard all of it, and heard from the agent within the
    /// interval.
    pub(super) fn reason(
        &self,
        report: &Report,
        contact: &Contact,
        now: Instant,
        interval: Duration,
    ) -> Option<BeatReason> {
        let Some((last, then)) = &self.last else {
            return Some(BeatReason::First);
        };
        let quiet = contact
            .last_sent
            .is_none_or(|sent| now.saturating_duration_since(sent) >= interval);
        let reason = if contact.registrations != then.registrations {
            BeatReason::First
        } else if contact.failures != then.failures {
            BeatReason::ControllerFailed
        } else if contact.controller != then.controller {
            BeatReason::OtherController
        } else if quiet {
            BeatReason::Quiet
        } else if report != last {
            BeatReason::Changed
        } else if !self.heard_twice {
            BeatReason::SecondLook
        } else if contact.results != then.results {
            BeatReason::TaskReported
        } else if self.skipped + 1 + self.head_start >= self.full_report_every {
            BeatReason::FullReportDue
        } else {
            return None;
        };
        Some(reason)
    }

    /// A beat with `report`, sent for `reason`, reached the controller:
    /// `before` is the client's [`Contact`] read before it was sent,
    /// `answered_by` the controller that took it.
    pub(super) fn sent(
        &mut self,
        reason: BeatReason,
        report: Report,
        before: Contact,
        answered_by: usize,
    ) {
        if reason == BeatReason::FullReportDue {
            self.head_start = 0;
        }
        self.heard_twice = self.last.as_ref().is_some_and(|(last, _)| *last == report);
        self.last = Some((
            report,
            Contact {
                controller: answered_by,
                ..before
            },
        ));
        self.skipped = 0;
    }

    /// A wake went by without a beat.
    pub(super) fn skipped(&mut self) {
        self.skipped = self.skipped.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use novum_wire::{CpuInfo, PowerState};

    const INTERVAL: Duration = Duration::from_secs(30);

    fn inventory(vcpus: u32, uptime: &str) -> Inventory {
        Inventory {
            vcpus,
            memory_mb: 8192,
            disk_gb: 100,
            cpu_info: CpuInfo::default(),
            hypervisor_type: "QEMU".into(),
            hypervisor_version: 8_002_000,
            hypervisor_hostname: "h1".into(),
            host_ip: None,
            supported_instances: Vec::new(),
            uptime: Some(uptime.into()),
        }
    }

    fn contact(last_sent: Instant) -> Contact {
        Contact {
            last_sent: Some(last_sent),
            failures: 0,
            registrations: 1,
            results: 0,
            controller: 0,
        }
    }

    /// Heartbeats that sent `report` twice (so heard it twice), with
    /// `contact` before each.
    fn heard_twice(report: &Report, contact: Contact) -> Heartbeats {
        let mut beats = Heartbeats::new("h1", 4);
        beats.sent(BeatReason::Changed, report.clone(), contact, 0);
        beats.sent(BeatReason::Changed, report.clone(), contact, 0);
        beats
    }

    #[test]
    fn an_idle_host_beats_only_for_the_full_report() {
        let start = Instant::now();
        let report = Report::of(&inventory(4, "10:00 up"), &[]);
        let mut beats = Heartbeats::new("h1", 4);
        assert_eq!(
            beats.reason(&report, &contact(start), start, INTERVAL),
            Some(BeatReason::First)
        );
        beats.sent(BeatReason::Changed, report.clone(), contact(start), 0);
        assert_eq!(
            beats.reason(&report, &contact(start), start, INTERVAL),
            Some(BeatReason::SecondLook)
        );
        beats.sent(BeatReason::Changed, report.clone(), contact(start), 0);
        // Only the uptime moved, and a long poll went a moment ago.
        let later = Report::of(&inventory(4, "10:01 up"), &[]);
        assert_eq!(later, report);
        // The first full report comes early by the host's head start, the
        // next a full four intervals after it.
        let first = 4 - beats.head_start;
        let mut sent = Vec::new();
        for wake in 1..=first + 4 {
            let now = start + INTERVAL * wake;
            let poll = contact(now - Duration::from_secs(1));
            match beats.reason(&later, &poll, now, INTERVAL) {
                Some(reason) => {
                    sent.push((wake, reason));
                    beats.sent(reason, later.clone(), poll, 0);
                }
                None => beats.skipped(),
            }
        }
        assert_eq!(
            sent,
            [
                (first, BeatReason::FullReportDue),
                (first + 4, BeatReason::FullReportDue)
            ]
        );
    }

    #[test]
    fn hosts_started_together_spread_their_full_reports() {
        let head_starts: std::collections::HashSet<u32> = (1..=100)
            .map(|host| Heartbeats::new(&format!("sim-{host:03}"), 10).head_start)
            .collect();
        assert!(head_starts.iter().all(|start| *start < 10));
        assert!(head_starts.len() >= 8, "{head_starts:?}");
    }

    #[test]
    fn a_change_goes_at_once_and_once_more() {
        let now = Instant::now();
        let polled = contact(now);
        let report = Report::of(&inventory(4, "up"), &[]);
        let mut beats = heard_twice(&report, polled);
        let guest = InstancePower {
            uuid: uuid::Uuid::new_v4(),
            power_state: PowerState::Running,
        };
        let changed = Report::of(&inventory(4, "up"), std::slice::from_ref(&guest));
        assert_eq!(
            beats.reason(&changed, &polled, now, INTERVAL),
            Some(BeatReason::Changed)
        );
        beats.sent(BeatReason::Changed, changed.clone(), polled, 0);
        assert_eq!(beats.reported_instances(), Some(&[guest][..]));
        assert_eq!(
            beats.reason(&changed, &polled, now, INTERVAL),
            Some(BeatReason::SecondLook)
        );
        beats.sent(BeatReason::Changed, changed.clone(), polled, 0);
        assert_eq!(beats.reason(&changed, &polled, now, INTERVAL), None);
        let bigger = Report::of(&inventory(8, "up"), &[]);
        assert_eq!(
            beats.reason(&bigger, &polled, now, INTERVAL),
            Some(BeatReason::Changed)
        );
    }

    #[test]
    fn the_controller_hears_after_failures_registrations_results_and_silence() {
        let now = Instant::now();
        let polled = contact(now);
        let report = Report::of(&inventory(4, "up"), &[]);
        let beats = heard_twice(&report, polled);
        assert_eq!(beats.reason(&report, &polled, now, INTERVAL), None);
        let cases = [
            (
                Contact {
                    failures: 1,
                    ..polled
                },
                BeatReason::ControllerFailed,
            ),
            (
                Contact {
                    registrations: 2,
                    ..polled
                },
                BeatReason::First,
            ),
            (
                Contact {
                    controller: 1,
                    ..polled
                },
                BeatReason::OtherController,
            ),
            (
                Contact {
                    results: 1,
                    ..polled
                },
                BeatReason::TaskReported,
            ),
            (
                Contact {
                    last_sent: Some(now - INTERVAL),
                    ..polled
                },
                BeatReason::Quiet,
            ),
            (
                Contact {
                    last_sent: None,
                    ..polled
                },
                BeatReason::Quiet,
            ),
        ];
        for (contact, reason) in cases {
            assert_eq!(
                beats.reason(&report, &contact, now, INTERVAL),
                Some(reason),
                "{contact:?}"
            );
        }
    }

    #[test]
    fn wakes_settle_half_way_between_the_polls() {
        let start = Instant::now();
        let report = Report::of(&inventory(4, "up"), &[]);
        // The poll loop sends at start and every interval (plus a little);
        // the heartbeat loop starts in step with it.
        let poll_period = INTERVAL + Duration::from_millis(3);
        let last_poll = |now: Instant| {
            let polls = now.duration_since(start).as_nanos() / poll_period.as_nanos();
            start + poll_period * u32::try_from(polls).expect("few polls")
        };
        let mut beats = Heartbeats::new("h1", 1000);
        beats.head_start = 0;
        beats.sent(BeatReason::Changed, report.clone(), contact(start), 0);
        beats.sent(BeatReason::Changed, report.clone(), contact(start), 0);
        let mut now = start + INTERVAL + Duration::from_millis(1);
        let mut quiet = 0;
        for _ in 0..200 {
            let polled = contact(last_poll(now));
            let delay = match beats.reason(&report, &polled, now, INTERVAL) {
                Some(reason) => {
                    assert_eq!(reason, BeatReason::Quiet);
                    quiet += 1;
                    beats.sent(reason, report.clone(), polled, 0);
                    INTERVAL
                }
                None => {
                    beats.skipped();
                    delay_after_skip(polled.last_sent, now, INTERVAL)
                }
            };
            assert!(delay >= INTERVAL / 2 && delay <= INTERVAL * 3 / 2);
            now += delay;
        }
        assert!(quiet <= 1, "{quiet} beats for nothing");
        let age = now.duration_since(last_poll(now));
        assert!(
            age > INTERVAL / 4 && age < INTERVAL * 3 / 4,
            "a wake {age:?} after the last poll"
        );
        // The polls stop: the next wake beats, one and a half intervals
        // after the last.
        let stopped = last_poll(now);
        let wake = now + delay_after_skip(Some(stopped), now, INTERVAL);
        assert_eq!(wake, stopped + INTERVAL * 3 / 2);
        assert_eq!(
            beats.reason(&report, &contact(stopped), wake, INTERVAL),
            Some(BeatReason::Quiet)
        );
    }

    #[test]
    fn one_full_report_in_every_interval_beats_at_each_wake() {
        let now = Instant::now();
        let polled = contact(now);
        let report = Report::of(&inventory(4, "up"), &[]);
        let mut beats = Heartbeats::new("h1", 0);
        beats.sent(BeatReason::Changed, report.clone(), polled, 0);
        beats.sent(BeatReason::Changed, report.clone(), polled, 0);
        assert_eq!(
            beats.reason(&report, &polled, now, INTERVAL),
            Some(BeatReason::FullReportDue)
        );
    }
}
