//! The novum compute agent: one per hypervisor host.
//!
//! It registers with the controller, heartbeats its inventory and the power
//! state of every domain, long-polls for tasks, runs them through a
//! [`driver::VirtDriver`] and reports the results. All traffic is started by the
//! agent over HTTP (see `novum_wire` for the protocol).
#![deny(missing_docs)]

pub mod agent;
pub mod config_drive;
pub mod credentials;
pub mod driver;
pub mod execute;
pub mod firewall;
pub mod fleet;
pub mod metadata_proxy;

pub use agent::{AgentConfig, AgentError, run_agent, run_agent_with_driver};
