//! Reading another process's memory with `process_vm_readv`: what the
//! samplers (`plans=sampled`, `wait_events`) use to look into backends
//! with no probe in them. Every read is all or nothing; the kernel checks
//! the range (an unmapped address is `None`, never a fault).

/// `buf.len()` bytes at `addr` in process `pid`, all or nothing.
pub fn read(pid: u32, addr: u64, buf: &mut [u8]) -> Option<()> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes `buf`, writable for its length; the remote
    // range is only read, by the kernel, which checks it.
    let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    (n == buf.len() as isize).then_some(())
}

pub fn read_u64(pid: u32, addr: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    read(pid, addr, &mut b)?;
    Some(u64::from_ne_bytes(b))
}

pub fn read_u32(pid: u32, addr: u64) -> Option<u32> {
    let mut b = [0u8; 4];
    read(pid, addr, &mut b)?;
    Some(u32::from_ne_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reading this very process: a value in a buffer, and an address that
    /// is not mapped.
    #[test]
    fn reads_another_address_space_all_or_nothing() {
        let me = std::process::id();
        let value: u64 = 0x1122_3344_5566_7788;
        assert_eq!(read_u64(me, &value as *const u64 as u64), Some(value));
        assert_eq!(read_u32(me, &value as *const u64 as u64), Some(0x5566_7788));
        assert_eq!(read_u64(me, 8), None, "page 0 is never mapped");
    }
}
