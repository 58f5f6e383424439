//! Consoles of instances (Nova's `get_console_output` and
//! `get_serial_console`): the agent of the instance's host is asked through
//! a query task (see [`tasks::enqueue_query`]) and the request waits for
//! its answer, at most `[compute] agent_call_timeout_seconds`. A serial
//! console comes back as a one-time token of [`console_tokens`] for the
//! controller's console proxy.

use std::time::Duration;

use novum_wire::{TaskAction, TaskAnswer};

use super::model::Instance;
use super::states::task;
use super::tasks::{self, QueryEnd};
use super::{Conductor, ConductorError, Result};
use crate::store::console_tokens::{self, IssuedToken};

/// The serial console type (Nova's `serial`).
pub const SERIAL: &str = "serial";

impl Conductor {
    /// The last `lines` lines (all when `None`) of `instance`'s console log.
    pub async fn console_output(
        &self,
        instance: &Instance,
        lines: Option<u32>,
        request_id: &str,
    ) -> Result<String> {
        let action = TaskAction::ConsoleOutput { lines };
        match self
            .ask_agent(instance, "get_console_output", &action, request_id)
            .await?
        {
            TaskAnswer::ConsoleOutput { output } => Ok(output),
            other => Err(unexpected(&other)),
        }
    }

    /// A one-time token for `instance`'s serial console, which the agent of
    /// its host says where to reach; it expires after
    /// `[compute] console_token_ttl_seconds`.
    pub async fn serial_console(
        &self,
        instance: &Instance,
        request_id: &str,
    ) -> Result<IssuedToken> {
        match self
            .ask_agent(
                instance,
                "get_serial_console",
                &TaskAction::SerialConsole,
                request_id,
            )
            .await?
        {
            TaskAnswer::SerialConsole { host, port } => {
                let ttl = Duration::from_secs(self.compute.console_token_ttl_seconds);
                Ok(
                    console_tokens::issue(&self.db, &instance.uuid, SERIAL, &host, port, ttl)
                        .await?,
                )
            }
            TaskAnswer::ConsoleUnavailable { console_type } => Err(ConductorError::BadRequest(
                format!("Unavailable console type {console_type}."),
            )),
            other => Err(unexpected(&other)),
        }
    }

    /// Asks the agent of `instance`'s host the query `action` (Nova's
    /// synchronous RPC call) and waits for the answer. `method` names the
    /// call in refusals (`get_console_output`). Refused with 409 like Nova's
    /// `check_instance_host` and `reject_instance_state`: an instance on no
    /// host yet, or being deleted or moved.
    pub(super) async fn ask_agent(
        &self,
        instance: &Instance,
        method: &str,
        action: &TaskAction,
        request_id: &str,
    ) -> Result<TaskAnswer> {
        let uuid = &instance.uuid;
        let (_, end) = self
            .query_agent(instance, method, action, request_id)
            .await?;
        let host = instance.host.as_deref().unwrap_or_default();
        match end {
            QueryEnd::Answered(answer) => Ok(answer),
            QueryEnd::Failed(message) => Err(ConductorError::Conflict(message)),
            QueryEnd::Cancelled => Err(ConductorError::NotFound(format!(
                "Instance {uuid} could not be found."
            ))),
            QueryEnd::TimedOut => Err(self.call_timed_out(method, host)),
        }
    }

    /// The 504 of a call `method` the agent on `host` did not answer in time.
    pub(super) fn call_timed_out(&self, method: &str, host: &str) -> ConductorError {
        ConductorError::Timeout(format!(
            "Timed out waiting for a reply to {method} from the compute agent on {host} ({} s).",
            self.compute.agent_call_timeout_seconds
        ))
    }

    /// What [`Conductor::ask_agent`] does before mapping the end: the
    /// guards, the query task (its id is returned) and the wait.
    pub(super) async fn query_agent(
        &self,
        instance: &Instance,
        method: &str,
        action: &TaskAction,
        request_id: &str,
    ) -> Result<(String, QueryEnd)> {
        let uuid = &instance.uuid;
        let Some(host) = instance.host.as_deref().filter(|host| !host.is_empty()) else {
            return Err(ConductorError::Conflict(format!(
                "Instance {uuid} is not ready"
            )));
        };
        if let Some(task_state) = instance.task_state.as_deref()
            && (task_state == task::DELETING || super::resize::is_resizing(task_state))
        {
            return Err(ConductorError::Conflict(format!(
                "Cannot '{method}' instance {uuid} while it is in task_state {task_state}"
            )));
        }
        let id =
            tasks::enqueue_query(&self.db, &self.board, host, uuid, action, request_id).await?;
        let timeout = Duration::from_secs(self.compute.agent_call_timeout_seconds);
        let end = tasks::wait_answer(&self.db, &self.board, &id, timeout).await?;
        Ok((id, end))
    }
}

pub(super) fn unexpected(answer: &TaskAnswer) -> ConductorError {
    ConductorError::Conflict(format!(
        "The compute agent gave an answer of another kind: {answer:?}"
    ))
}
