//! The console proxy (Nova's `nova-serialproxy`, built in): a websocket at
//! [`SERIAL_CONSOLE_PATH`]`?token=…` that takes a one-time token handed out
//! by `remote-consoles` (see `novum_compute::store::console_tokens`),
//! connects to the guest's serial port on its agent host (raw TCP) and
//! pipes bytes both ways as binary frames. It speaks the `binary`
//! subprotocol when the client asks for it (as novaconsole does). A token
//! unknown, used or expired is refused with 401 before the upgrade.

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::fault::{ApiError, ApiResult};
use novum_compute::store::console_tokens;

pub use crate::compute::consoles::SERIAL_CONSOLE_PATH;

/// How long connecting to a guest's console port may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes read from the console port per frame, at most.
const FRAME_BYTES: usize = 16 * 1024;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct TokenQuery {
    /// The one-time token of the console URL.
    token: Option<String>,
}

#[utoipa::path(get, path = "/serial-console", params(TokenQuery), responses((status = SWITCHING_PROTOCOLS, description = "The console, as a websocket of binary frames"), crate::fault::ApiError))]
async fn serial_console(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    // Not a websocket handshake: a fault in Nova's shape, and the token
    // stays unused.
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::bad_request(format!(
            "The serial console is a websocket: {}",
            rejection.body_text()
        ))
    })?;
    let refused = || ApiError::unauthorized("The console token is invalid, used or expired.");
    let token = query
        .token
        .filter(|token| !token.is_empty())
        .ok_or_else(refused)?;
    let target = console_tokens::take(&state.db, &token)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(refused)?;
    let address = (target.host.as_str(), target.port);
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
        Ok(Ok(tcp)) => tcp,
        failed => {
            let reason = match failed {
                Ok(Err(error)) => error.to_string(),
                _ => "timed out".to_string(),
            };
            tracing::warn!(
                instance = %target.instance_uuid,
                host = %target.host,
                port = target.port,
                %reason,
                "cannot reach a serial console"
            );
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_GATEWAY,
                format!(
                    "The serial console of instance {} cannot be reached.",
                    target.instance_uuid
                ),
            ));
        }
    };
    tracing::info!(instance = %target.instance_uuid, "serial console opened");
    let instance = target.instance_uuid;
    Ok(upgrade
        .protocols(["binary"])
        .on_upgrade(move |socket| async move {
            pipe(socket, tcp).await;
            tracing::info!(%instance, "serial console closed");
        }))
}

/// Copies bytes between the websocket and the console port until either
/// side closes.
async fn pipe(mut socket: WebSocket, mut tcp: TcpStream) {
    let mut buffer = vec![0_u8; FRAME_BYTES];
    loop {
        tokio::select! {
            message = socket.recv() => {
                let bytes = match message {
                    Some(Ok(Message::Binary(bytes))) => bytes,
                    Some(Ok(Message::Text(text))) => axum::body::Bytes::from(text.as_str().to_owned()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                };
                if tcp.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            read = tcp.read(&mut buffer) => {
                let count = match read {
                    Ok(0) | Err(_) => break,
                    Ok(count) => count,
                };
                let frame = axum::body::Bytes::copy_from_slice(&buffer[..count]);
                if socket.send(Message::Binary(frame)).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
    let _ = tcp.shutdown().await;
}

/// The console proxy's route.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(serial_console))
}
