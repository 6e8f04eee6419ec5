//! Reads every backend's `PGPROC.wait_event_info` once a tick. A backend's
//! `MyProc` (a global of its own, set when it starts) is read once and
//! checked against its pid; after that a sample is one 4-byte
//! `process_vm_readv` per backend.

use rustc_hash::FxHashMap as HashMap;

use super::WaitSampleRecord;
use super::probes::WaitEventSource;
use crate::os::procmem::{read_u32, read_u64};
use crate::pipeline::drain::{Chunk, monotonic_ns};
use crate::ring::{EV_WAIT_SAMPLE, EventHeader, bytes_of};

pub struct WaitSampler {
    src: WaitEventSource,
    /// Each backend's PGPROC, once found.
    procs: HashMap<u32, u64>,
}

impl WaitSampler {
    pub fn new(src: WaitEventSource) -> Self {
        WaitSampler {
            src,
            procs: HashMap::default(),
        }
    }

    /// One sample of each of `pids` (a backend not yet attached to shared
    /// memory has none), appended to `chunk` as records.
    pub fn sample(&mut self, pids: &[u32], chunk: &mut Chunk) {
        let ts = monotonic_ns();
        for &pid in pids {
            let Some(proc) = self.proc_of(pid) else {
                continue;
            };
            let Some(info) = read_u32(pid, proc + u64::from(self.src.proc_wait_event_info)) else {
                self.procs.remove(&pid);
                continue;
            };
            let r = WaitSampleRecord {
                h: EventHeader {
                    ts,
                    pid,
                    tid: pid,
                    kind: EV_WAIT_SAMPLE,
                    flags: 0,
                    cpu: 0,
                },
                info,
                pad: 0,
            };
            let bytes = bytes_of(&r);
            chunk.extend_from_slice(&(bytes.len() as u32).to_ne_bytes());
            chunk.extend_from_slice(bytes);
        }
        if self.procs.len() > 2 * pids.len().max(64) {
            self.procs.retain(|p, _| pids.contains(p));
        }
    }

    fn proc_of(&mut self, pid: u32) -> Option<u64> {
        if let Some(&p) = self.procs.get(&pid) {
            return Some(p);
        }
        let p = read_u64(pid, self.src.my_proc).filter(|&p| p != 0)?;
        // A PGPROC slot is reused by later backends: it is this one's only
        // if it names this pid.
        (read_u32(pid, p + u64::from(self.src.proc_pid))? == pid).then(|| {
            self.procs.insert(pid, p);
            p
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::layout::wait_events_for;

    /// A PGPROC laid out in this process's memory, found through a
    /// `MyProc` of this process.
    #[test]
    fn reads_the_wait_event_of_the_proc_its_pid_names() {
        let me = std::process::id();
        let mut proc = [0u8; 1024];
        proc[100..104].copy_from_slice(&me.to_ne_bytes());
        proc[200..204].copy_from_slice(&0x0900_0001u32.to_ne_bytes());
        let my_proc: u64 = proc.as_ptr() as u64;
        let src = WaitEventSource {
            my_proc: &my_proc as *const u64 as u64,
            proc_pid: 100,
            proc_wait_event_info: 200,
            names: wait_events_for(15).unwrap(),
        };
        let mut s = WaitSampler::new(src);
        let mut chunk = Chunk::new();
        s.sample(&[me], &mut chunk);
        let got: Vec<_> = crate::pipeline::drain::records(&chunk)
            .map(|r| super::super::decode(r).unwrap())
            .collect();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].pid, got[0].info), (me, 0x0900_0001));
        // A slot that names another pid is not this backend's.
        let mut s = WaitSampler::new(WaitEventSource {
            proc_pid: 200,
            ..src
        });
        let mut chunk = Chunk::new();
        s.sample(&[me], &mut chunk);
        assert!(chunk.is_empty());
    }
}
