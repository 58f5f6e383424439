//! novum's scheduler: host state, the columnar tables plugins read, and the
//! filter → weigh → select pipeline (see [`pipeline`]), with the
//! `[scheduler]` configuration section, synthetic clouds and the
//! `novum bench scheduler` benchmark. Plugins run through
//! `novum-plugin-host`; this crate knows nothing of HTTP or the database.

#![deny(missing_docs)]

pub mod bench;
pub mod config;
pub mod explain;
pub mod pipeline;
pub mod state;
pub mod synthetic;
pub mod table;
pub mod whatif;

pub use config::SchedulerConfig;
pub use explain::{Decision, DecisionSummary};
pub use pipeline::{
    ClaimOutcome, Claimer, FilterCount, HostRejection, NoClaims, NoValidHost, Ranking,
    ScheduleError, Selection, Trace, rank, schedule, schedule_traced,
};
pub use state::{
    Aggregate, CloudSnapshot, HostState, InstanceOnHost, SchedulingRequest, resource_shortage,
};
