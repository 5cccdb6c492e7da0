//! A streamed reply that never holds up the request it answers.
//!
//! An import reads its upload and writes a result line for each line it reads.
//! Most clients send the whole body before they read anything (Python's
//! `requests`, Java's `HttpURLConnection`): if the importer waited for the client
//! to take its results, it would stop reading the upload, and both sides would
//! wait for ever. So the results go through a spool: kept in memory up to
//! [`MEMORY`], then appended to an anonymous temporary file, and handed to the
//! client in order as fast as it reads. The importer never waits for the client;
//! memory stays bounded whatever the upload's size.

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom, Write};

use bytes::Bytes;
use tokio::sync::mpsc;

/// Results kept in memory before the spool spills to disk.
const MEMORY: usize = 1 << 20;
/// What one read of the spilled part hands the client at most.
const CHUNK: usize = 64 * 1024;

/// Results waiting for the client: the oldest in memory, then (once memory was
/// full) the rest in a file, read back in order.
#[derive(Default)]
struct Spool {
    memory: VecDeque<Bytes>,
    in_memory: usize,
    file: Option<std::fs::File>,
    /// Where the next read and the next write of the file are.
    read_at: u64,
    written: u64,
}

impl Spool {
    fn is_empty(&self) -> bool {
        self.memory.is_empty() && self.read_at == self.written
    }

    fn push(&mut self, b: Bytes) -> std::io::Result<()> {
        // Once anything is on disk, everything after it goes there too: order holds.
        if self.written == self.read_at && self.in_memory + b.len() <= MEMORY {
            self.in_memory += b.len();
            self.memory.push_back(b);
            return Ok(());
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(tempfile::tempfile()?),
        };
        file.seek(SeekFrom::Start(self.written))?;
        file.write_all(&b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    fn pop(&mut self) -> std::io::Result<Option<Bytes>> {
        if let Some(b) = self.memory.pop_front() {
            self.in_memory -= b.len();
            return Ok(Some(b));
        }
        let Some(file) = &mut self.file else { return Ok(None) };
        if self.read_at == self.written {
            return Ok(None);
        }
        let n = (self.written - self.read_at).min(CHUNK as u64) as usize;
        let mut buf = vec![0u8; n];
        file.seek(SeekFrom::Start(self.read_at))?;
        file.read_exact(&mut buf)?;
        self.read_at += n as u64;
        if self.read_at == self.written {
            // Drained: the file starts over (and memory takes results again).
            (self.read_at, self.written) = (0, 0);
            file.set_len(0)?;
        }
        Ok(Some(Bytes::from(buf)))
    }
}

/// Carries `results` to `out`, taking every result as soon as it is made and
/// keeping what the client has not read yet in a [`Spool`]. Ends when the
/// results end and the client has them all, or when the client is gone.
pub async fn pump(mut results: mpsc::Receiver<Bytes>, out: mpsc::Sender<Result<Bytes, std::io::Error>>) {
    let mut spool = Spool::default();
    let mut more = true;
    while more || !spool.is_empty() {
        tokio::select! {
            // Results first: the importer must never wait.
            biased;
            next = results.recv(), if more => match next {
                Some(b) => {
                    if let Err(e) = spool.push(b) {
                        tracing::error!(error = %e, "could not spool an import's results");
                        let _ = out.send(Err(e)).await;
                        return;
                    }
                }
                None => more = false,
            },
            permit = out.reserve(), if !spool.is_empty() => {
                let Ok(permit) = permit else { return };
                match spool.pop() {
                    Ok(Some(b)) => permit.send(Ok(b)),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "could not read back an import's results");
                        permit.send(Err(e));
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spool_keeps_order_across_memory_and_disk() {
        let mut s = Spool::default();
        let line = |i: usize| Bytes::from(format!("{{\"line\":{i}}}\n"));
        let mut expected = Vec::new();
        for i in 0..200_000 {
            expected.extend_from_slice(&line(i));
            s.push(line(i)).unwrap();
        }
        assert!(s.written > 0, "past a MiB the spool spilled to disk");
        let mut got = Vec::new();
        let mut next = 200_000;
        while let Some(b) = s.pop().unwrap() {
            got.extend_from_slice(&b);
            // Results keep coming while the client reads.
            if next < 210_000 {
                expected.extend_from_slice(&line(next));
                s.push(line(next)).unwrap();
                next += 1;
            }
        }
        assert_eq!(got, expected);
        assert!(s.is_empty());
        s.push(line(1)).unwrap();
        assert_eq!(s.pop().unwrap().unwrap(), line(1), "drained, it starts over in memory");
    }
}
