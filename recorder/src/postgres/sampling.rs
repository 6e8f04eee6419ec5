//! The recorder's samplers of a PostgreSQL server, on one thread: every
//! tick they look into each backend's memory (`process_vm_readv`, no probe
//! in the server) and hand what they read to the writer as a chunk of
//! records, like one drained from the ring.
//!
//! - wait events ([`wait_events`](super::wait_events)): every tick (100 Hz);
//! - plans ([`plans::sampler`](super::plans::sampler)): every
//!   [`plans::SAMPLE_TICK`](super::plans::SAMPLE_TICK) (20 Hz).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant};

use super::plans::{self, sampler::PlanSampler};
use super::wait_events::{self, sampler::WaitSampler};
use crate::os::procfs;
use crate::pipeline::drain::{self, Chunk, UserDrops};
use crate::ring::{EventHeader, drop_kind_of, read};

pub struct Samplers {
    pub plans: Option<PlanSampler>,
    pub waits: Option<WaitSampler>,
}

impl Samplers {
    pub fn is_empty(&self) -> bool {
        self.plans.is_none() && self.waits.is_none()
    }

    /// The thread's period: the shortest of its samplers'.
    fn tick(&self) -> Duration {
        if self.waits.is_some() {
            wait_events::SAMPLE_TICK
        } else {
            plans::SAMPLE_TICK
        }
    }
}

/// Looks at the children of `root` every tick until `stop`. A chunk the
/// writer cannot take (its channel full) is dropped and its records
/// counted as drops of their kinds.
pub fn run(
    mut s: Samplers,
    root: u32,
    tx: SyncSender<Chunk>,
    stop: Arc<AtomicBool>,
    lost: Arc<UserDrops>,
) {
    let tick = s.tick();
    let plan_every = (plans::SAMPLE_TICK.as_nanos() / tick.as_nanos()).max(1) as u64;
    let mut n = 0u64;
    let mut next = Instant::now();
    while !stop.load(Ordering::Acquire) {
        // Listed every tick (one small read of /proc): a connection that
        // lives for less than a second is still looked at.
        let pids = procfs::children(root);
        let mut chunk = Chunk::new();
        if let Some(w) = &mut s.waits {
            w.sample(&pids, &mut chunk);
        }
        if n.is_multiple_of(plan_every)
            && let Some(p) = &mut s.plans
        {
            p.sample(&pids, &mut chunk);
        }
        n += 1;
        if !chunk.is_empty()
            && let Err(TrySendError::Full(c)) = tx.try_send(chunk)
        {
            let mut lost = lost.0.lock().unwrap_or_else(|e| e.into_inner());
            for r in drain::records(&c) {
                if let Some(h) = read::<EventHeader>(r) {
                    lost[drop_kind_of(h.kind) as usize] += 1;
                }
            }
        }
        // A fixed rate, not a fixed pause: the samples stay evenly spaced
        // however long a look takes.
        next += tick;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}
