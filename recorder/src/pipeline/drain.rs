//! The two recorder threads: the drain copies ring-buffer records into
//! chunks and hands them over a bounded channel; the writer decodes them into
//! the [`Sink`]. A full channel drops the chunk and counts its events, so the
//! drain never blocks and the kernel ring never backs up behind Parquet.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use aya::maps::{MapData, RingBuf};
use dbflight_format::Manifest;

use super::sink::{Sink, TICK};
use crate::probes::bpf::DropCounters;
use crate::ring;

/// Records, each prefixed by its u32 length.
pub type Chunk = Vec<u8>;

const CHUNK_BYTES: usize = 1 << 20;
/// Between passes over the ring: each pass wakes the drain and then the
/// writer, on CPUs the server needs (20 of each a second, not 100). The
/// 32 MiB ring holds 50 ms of even 1 M events/s (about 5 MB).
const IDLE_SLEEP: Duration = Duration::from_millis(50);

/// Events lost because the writer fell behind, per drop kind.
#[derive(Debug, Default)]
pub struct UserDrops(pub Mutex<[u64; ring::DROP_KINDS as usize]>);

fn drop_kind_of(record: &[u8]) -> u32 {
    let kind = record
        .get(16..18)
        .map_or(0, |b| u16::from_ne_bytes([b[0], b[1]]));
    ring::drop_kind_of(kind)
}

/// Drains the ring buffer until `stop` is set and the ring is empty.
pub fn drain(
    mut ring: RingBuf<MapData>,
    tx: SyncSender<Chunk>,
    stop: Arc<AtomicBool>,
    lost: Arc<UserDrops>,
) {
    let mut chunk = Chunk::with_capacity(CHUNK_BYTES);
    let send = |chunk: Chunk| {
        if let Err(TrySendError::Full(c)) = tx.try_send(chunk) {
            let mut lost = lost.0.lock().unwrap_or_else(|e| e.into_inner());
            for rec in records(&c) {
                lost[drop_kind_of(rec) as usize] += 1;
            }
        }
    };
    loop {
        // Read the flag before draining so a final pass always follows it.
        let stopping = stop.load(Ordering::Acquire);
        let mut full = false;
        while let Some(item) = ring.next() {
            chunk.extend_from_slice(&(item.len() as u32).to_ne_bytes());
            chunk.extend_from_slice(&item);
            if chunk.len() >= CHUNK_BYTES {
                full = true;
                send(std::mem::replace(
                    &mut chunk,
                    Chunk::with_capacity(CHUNK_BYTES),
                ));
            }
        }
        if !chunk.is_empty() {
            send(std::mem::replace(
                &mut chunk,
                Chunk::with_capacity(CHUNK_BYTES),
            ));
        }
        if stopping {
            return;
        }
        // One pass per tick unless a chunk filled up: passes right after one
        // another would each find a few records and wake the writer for them,
        // on CPUs the traced server needs.
        if !full {
            std::thread::sleep(IDLE_SLEEP);
        }
    }
}

/// Iterates the records of a chunk.
pub fn records(chunk: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = chunk;
    std::iter::from_fn(move || {
        let len = u32::from_ne_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let rec = rest.get(4..4 + len)?;
        rest = &rest[4 + len..];
        Some(rec)
    })
}

pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Writer thread: decodes chunks into the sink until the drain hangs up.
pub fn write(
    mut sink: Sink,
    rx: Receiver<Chunk>,
    drops: DropCounters,
    lost: Arc<UserDrops>,
) -> Result<Manifest> {
    let mut last_tick = Instant::now();
    let take_lost = |sink: &mut Sink| {
        let mut l = lost.0.lock().unwrap_or_else(|e| e.into_inner());
        for (k, n) in l.iter_mut().enumerate() {
            if *n > 0 {
                sink.count_user_drop(k as u32, *n);
                *n = 0;
            }
        }
    };
    loop {
        match rx.recv_timeout(TICK) {
            Ok(chunk) => {
                for rec in records(&chunk) {
                    if let Some(ev) = super::decode(rec) {
                        sink.handle(ev);
                    }
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if last_tick.elapsed() >= TICK {
            take_lost(&mut sink);
            sink.tick(monotonic_ns(), drops.read())?;
            last_tick = Instant::now();
        }
    }
    take_lost(&mut sink);
    sink.finish(monotonic_ns(), drops.read())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_framing_round_trip() {
        let mut c = Chunk::new();
        for r in [&b"abc"[..], b"", b"hello"] {
            c.extend_from_slice(&(r.len() as u32).to_ne_bytes());
            c.extend_from_slice(r);
        }
        let got: Vec<&[u8]> = records(&c).collect();
        assert_eq!(got, [&b"abc"[..], b"", b"hello"]);
        c.truncate(c.len() - 2); // a cut record is not returned
        assert_eq!(records(&c).count(), 2);
    }
}
