//! The JSON-lines log sink: one envelope per line, appended to a file.

use std::path::PathBuf;

use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::envelope::Envelope;

/// Appends messages to a file, one JSON object per line. A message is
/// acknowledged once written and flushed to the operating system.
pub struct JsonlSink {
    path: PathBuf,
    file: Mutex<Option<tokio::fs::File>>,
}

impl JsonlSink {
    /// A sink writing to `path` (created on first write, with its directory).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: Mutex::new(None),
        }
    }

    /// The file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Appends `messages`, one line each, in one write.
    pub async fn deliver(&self, messages: &[Envelope]) -> Result<(), String> {
        let mut text = String::new();
        for message in messages {
            let line = serde_json::to_string(message)
                .map_err(|error| format!("cannot encode message: {error}"))?;
            text.push_str(&line);
            text.push('\n');
        }
        let mut guard = self.file.lock().await;
        let result = async {
            if guard.is_none() {
                if let Some(parent) = self.path.parent() {
                    tokio::fs::create_dir_all(parent).await?;
                }
                let file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .await?;
                *guard = Some(file);
            }
            if let Some(file) = guard.as_mut() {
                file.write_all(text.as_bytes()).await?;
                file.flush().await?;
            }
            Ok::<(), std::io::Error>(())
        }
        .await;
        if let Err(error) = result {
            // Reopen next time (the file may have been rotated or removed).
            *guard = None;
            return Err(format!("cannot write {}: {error}", self.path.display()));
        }
        Ok(())
    }
}
