//! The JSON-lines log sink: one envelope per line, appended to a file.

use std::collections::HashSet;
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

    /// The message ids of the lines in the last `window` bytes of the file,
    /// read when a dispatcher takes the sink over: a dispatcher that died
    /// (several controllers on one database, one killed) may have written
    /// a line without recording it delivered, and its successor skips what
    /// is there already instead of writing it twice. A last line cut short
    /// by the death is ended, so the next line starts on its own.
    pub async fn recent_message_ids(&self, window: u64) -> HashSet<String> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let mut ids = HashSet::new();
        let Ok(mut file) = tokio::fs::File::open(&self.path).await else {
            return ids;
        };
        let Ok(length) = file.metadata().await.map(|metadata| metadata.len()) else {
            return ids;
        };
        let start = length.saturating_sub(window);
        if file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
            return ids;
        }
        let mut tail = Vec::new();
        if file.read_to_end(&mut tail).await.is_err() {
            return ids;
        }
        let mut lines = tail.split(|byte| *byte == b'\n');
        if start > 0 {
            // The first piece may be the end of a longer line.
            lines.next();
        }
        for line in lines {
            if let Ok(message) = serde_json::from_slice::<serde_json::Value>(line)
                && let Some(id) = message["message_id"].as_str()
            {
                ids.insert(id.to_string());
            }
        }
        if tail.last().is_some_and(|last| *last != b'\n') {
            let mut guard = self.file.lock().await;
            *guard = None;
            if let Ok(mut file) = tokio::fs::OpenOptions::new()
                .append(true)
                .open(&self.path)
                .await
            {
                let _ = file.write_all(b"\n").await;
                let _ = file.flush().await;
            }
        }
        ids
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
