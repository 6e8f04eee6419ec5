//! MariaDB sessions: where a THD keeps its connection id, user, client
//! host and ip, and current database, and the events BPF sends with them.
//!
//! The offsets differ between builds, so they are taken from the server
//! binary's own code: MariaDB exports small accessor functions for plugins
//! (`thd_user_name`, `thd_client_host`, `thd_client_ip`, `thd_current_db`,
//! `thd_get_thread_id`), each a load or two from its `THD *` argument.
//! [`decode_accessor`] reads such a function's machine code (a tiny x86-64
//! decoder for exactly those shapes) and [`thd_layout`] checks that the
//! five agree with each other. Where that fails, a table of builds whose
//! offsets were derived by hand ([`KNOWN_BUILDS`]) is tried by build id;
//! an unknown build gets no layout: BPF reads nothing, `user` and
//! `database` stay null, and the manifest says why.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::target::Family;
use crate::probes::elf::ElfInfo;
use crate::ring::{EventHeader, TEXT_OFFSET};

/// `struct mysql_thd_layout` (events.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MysqlThdLayout {
    pub valid: u32,
    pub thread_id: u32,
    pub thread_id_size: u32,
    pub db: u32,
    pub sctx: u32,
    pub sctx_user: u32,
    pub sctx_host: u32,
    pub sctx_ip: u32,
}
const _: () = assert!(size_of::<MysqlThdLayout>() == 32);

// SAFETY: repr(C) plain data of u32s, no padding (asserted above).
#[cfg(target_os = "linux")]
unsafe impl aya::Pod for MysqlThdLayout {}

/// Tells the MySQL program where a MariaDB THD keeps its session.
#[cfg(target_os = "linux")]
pub fn set_bpf_layout(
    rec: &mut crate::probes::bpf::Recorder,
    layout: MysqlThdLayout,
) -> anyhow::Result<()> {
    rec.set_config("mysql_thd_layouts", layout)
}

pub const MYSQL_USER_CAP: usize = 128;
pub const MYSQL_HOST_CAP: usize = 64;
pub const MYSQL_IP_CAP: usize = 48;
pub const MYSQL_DB_CAP: usize = 192;

/// `struct mysql_session_event` (events.h).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct SessionEvent {
    h: EventHeader,
    thd: u64,
    thread_id: u64,
    user: [u8; MYSQL_USER_CAP],
    host: [u8; MYSQL_HOST_CAP],
    ip: [u8; MYSQL_IP_CAP],
    db: [u8; MYSQL_DB_CAP],
}
const _: () = assert!(size_of::<SessionEvent>() == 24 + 16 + 128 + 64 + 48 + 192);
const _: () = assert!(TEXT_OFFSET == 40);

/// A session as the THD told it at a command's start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MysqlSession {
    pub thd: u64,
    /// The connection id (`CONNECTION_ID()`, processlist `Id`).
    pub connection_id: u64,
    pub user: Option<String>,
    pub host: Option<String>,
    pub ip: Option<String>,
    pub database: Option<String>,
}

fn c_str(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    (end > 0).then(|| String::from_utf8_lossy(&b[..end]).into_owned())
}

/// Decodes an `EV_MYSQL_SESSION` record (after its header).
pub fn decode_session(buf: &[u8]) -> Option<MysqlSession> {
    if buf.len() < size_of::<SessionEvent>() {
        return None;
    }
    // SAFETY: length checked; SessionEvent is repr(C) plain bytes and ints.
    let e: SessionEvent = unsafe { std::ptr::read_unaligned(buf.as_ptr().cast()) };
    Some(MysqlSession {
        thd: e.thd,
        connection_id: e.thread_id,
        user: c_str(&e.user),
        host: c_str(&e.host),
        ip: c_str(&e.ip),
        database: c_str(&e.db),
    })
}

/// What an accessor function returns, in terms of its `THD *` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `*(thd + off)`, `size` bytes.
    Field { off: u32, size: u8 },
    /// `thd + off`: the address of a member.
    Member(u32),
    /// `*(*(thd + outer) + inner)`: a field of a struct the THD points to
    /// (null-checked: `p ? p->inner : NULL`).
    Indirect { outer: u32, inner: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Val {
    Thd,
    Load(u32, u8),
    Addr(u32),
    Indirect(u32, u32),
}

/// The value of a straight-line x86-64 accessor of one argument (`rdi`),
/// from its machine code: `endbr64`, `mov`/`lea` from `rdi` or from a
/// register loaded from it, `test`, a forward `je`/`jne` (the null check:
/// the fall-through path is followed) and `ret`. Anything else (calls,
/// stack frames, SIB or RIP-relative operands, extended registers) is not
/// understood: `None`, never a guess.
pub fn decode_accessor(code: &[u8]) -> Option<Access> {
    let mut regs: [Option<Val>; 8] = [None; 8];
    regs[7] = Some(Val::Thd); // rdi
    let mut i = 0;
    for _ in 0..16 {
        let rest = code.get(i..)?;
        if rest.starts_with(&[0xf3, 0x0f, 0x1e, 0xfa]) {
            i += 4; // endbr64
            continue;
        }
        match rest {
            [0xc3, ..] => {
                return match regs[0]? {
                    Val::Load(off, size) => Some(Access::Field { off, size }),
                    Val::Addr(off) => Some(Access::Member(off)),
                    Val::Indirect(outer, inner) => Some(Access::Indirect { outer, inner }),
                    Val::Thd => None,
                };
            }
            // je/jne rel8 (forward): the null check.
            [0x74 | 0x75, rel, ..] if (*rel as i8) > 0 => i += 2,
            // test r64, r64
            [0x48, 0x85, modrm, ..] if modrm >> 6 == 3 => i += 3,
            // mov r64, m64 (0x48 0x8b) / mov r32, m32 (0x8b) / lea r64, m (0x48 0x8d)
            _ => {
                let (wide, rest) = match rest {
                    [0x48, r @ ..] => (true, r),
                    r => (false, r),
                };
                let (&op, rest) = rest.split_first()?;
                let (&modrm, rest) = rest.split_first()?;
                let (md, reg, rm) = (modrm >> 6, (modrm >> 3) & 7, modrm & 7);
                if md == 3 || rm == 4 || (md == 0 && rm == 5) {
                    return None; // register, SIB or RIP-relative operand
                }
                let (disp, len) = match md {
                    0 => (0i64, 0),
                    1 => (*rest.first()? as i8 as i64, 1),
                    _ => (
                        i32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as i64,
                        4,
                    ),
                };
                let disp = u32::try_from(disp).ok()?;
                let base = regs[rm as usize]?;
                let val = match (op, wide, base) {
                    (0x8b, true, Val::Thd) => Val::Load(disp, 8),
                    (0x8b, false, Val::Thd) => Val::Load(disp, 4),
                    (0x8b, true, Val::Load(outer, 8)) => Val::Indirect(outer, disp),
                    (0x8d, true, Val::Thd) => Val::Addr(disp),
                    _ => return None,
                };
                regs[reg as usize] = Some(val);
                i += usize::from(wide) + 2 + len;
            }
        }
    }
    None
}

/// The accessors whose code gives the layout, with what each must return.
const ACCESSORS: [&str; 5] = [
    "thd_user_name",
    "thd_client_host",
    "thd_client_ip",
    "thd_current_db",
    "thd_get_thread_id",
];

/// Builds whose offsets were derived by hand, by GNU build id: the
/// fallback when the accessors cannot be decoded.
///
/// Debian 12's mariadb-server 1:10.11.19-0+deb12u1 (/usr/sbin/mariadbd),
/// from `objdump -d` of its exported accessors:
/// - `thd_user_name`:  `mov 0x25f8(%rdi),%rax; test %rax,%rax; je; mov 0x8(%rax),%rax; ret`:
///   `THD::security_ctx` at 0x25f8, `Security_context::user` at 0x8;
/// - `thd_client_host`: the same with `mov (%rax),%rax`: `host` at 0x0;
/// - `thd_client_ip`: the same with `mov 0x10(%rax),%rax`: `ip` at 0x10;
/// - `thd_current_db`: `lea 0xa0(%rdi),%rax; ret` (returns `&thd->db`, a
///   `LEX_CSTRING` whose `str` comes first): `THD::db.str` at 0xa0;
/// - `thd_get_thread_id`: `mov 0x3f18(%rdi),%rax; ret`: `THD::thread_id`
///   (8 bytes) at 0x3f18.
pub const KNOWN_BUILDS: [(&str, &str, MysqlThdLayout); 1] = [(
    "439da8d94412de2c7eb3e2c5554bc0f31f438dc3",
    "MariaDB 10.11.19 (Debian 12, 1:10.11.19-0+deb12u1)",
    MysqlThdLayout {
        valid: 1,
        thread_id: 0x3f18,
        thread_id_size: 8,
        db: 0xa0,
        sctx: 0x25f8,
        sctx_user: 0x8,
        sctx_host: 0x0,
        sctx_ip: 0x10,
    },
)];

/// The layout from the five accessors' decoded code, if they agree.
pub fn layout_from_accessors(
    code: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Result<MysqlThdLayout, String> {
    let mut got = Vec::new();
    for name in ACCESSORS {
        let bytes = code(name).ok_or_else(|| format!("no {name} in the binary"))?;
        let a = decode_accessor(&bytes)
            .ok_or_else(|| format!("{name}'s code is not a plain field access"))?;
        got.push(a);
    }
    let sctx_field = |a: Access| match a {
        Access::Indirect { outer, inner } => Some((outer, inner)),
        _ => None,
    };
    let (Some((sctx, user)), Some((sctx_h, host)), Some((sctx_i, ip))) =
        (sctx_field(got[0]), sctx_field(got[1]), sctx_field(got[2]))
    else {
        return Err(
            "thd_user_name/thd_client_host/thd_client_ip do not read through security_ctx".into(),
        );
    };
    if sctx != sctx_h || sctx != sctx_i || user == host || user == ip || host == ip {
        return Err(format!(
            "the security context accessors disagree ({:?})",
            &got[..3]
        ));
    }
    // thd_current_db returns &thd->db (LEX_CSTRING *, str first) in 10.x
    // and 11.x; a `const char *` variant would load db.str itself.
    let db = match got[3] {
        Access::Member(off) | Access::Field { off, size: 8 } => off,
        other => return Err(format!("thd_current_db: unexpected {other:?}")),
    };
    let (thread_id, thread_id_size) = match got[4] {
        Access::Field { off, size } => (off, u32::from(size)),
        other => return Err(format!("thd_get_thread_id: unexpected {other:?}")),
    };
    Ok(MysqlThdLayout {
        valid: 1,
        thread_id,
        thread_id_size,
        db,
        sctx,
        sctx_user: user,
        sctx_host: host,
        sctx_ip: ip,
    })
}

/// The first bytes of each function, read from the binary's file.
fn function_code(elf: &ElfInfo, binary: &Path, name: &str) -> Option<Vec<u8>> {
    let sym = elf.symbol(name)?;
    let off = elf.vaddr_to_file_offset(sym.vaddr)?;
    let len = if sym.size == 0 { 64 } else { sym.size.min(64) } as usize;
    let mut f = std::fs::File::open(binary).ok()?;
    f.seek(SeekFrom::Start(off)).ok()?;
    let mut buf = vec![0; len];
    f.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// Where this server's THD keeps its session, and how that was found (for
/// the manifest); `None` with the reason when it is not known.
pub fn thd_layout(
    elf: &ElfInfo,
    binary: &Path,
    family: Family,
    version: &str,
) -> (Option<MysqlThdLayout>, String) {
    if family != Family::MariaDb {
        return (
            None,
            format!(
                "sessions: {} {version}'s THD layout is not known to dbflight (MariaDB only): user and database are null",
                family.kind()
            ),
        );
    }
    if elf.machine() != 62 {
        return (
            None,
            "sessions: not an x86-64 binary: user and database are null".into(),
        );
    }
    let decoded = layout_from_accessors(&|n| function_code(elf, binary, n));
    match decoded {
        Ok(l) => (
            Some(l),
            format!(
                "sessions: THD offsets from the binary's thd_user_name, thd_client_host, thd_client_ip, thd_current_db, thd_get_thread_id (security_ctx {:#x}: user {:#x}, host {:#x}, ip {:#x}; db {:#x}; thread_id {:#x})",
                l.sctx, l.sctx_user, l.sctx_host, l.sctx_ip, l.db, l.thread_id
            ),
        ),
        Err(why) => match KNOWN_BUILDS
            .iter()
            .find(|(id, ..)| Some(*id) == elf.build_id())
        {
            Some((_, name, l)) => (
                Some(*l),
                format!("sessions: THD offsets of the known build {name} ({why})"),
            ),
            None => (
                None,
                format!(
                    "sessions: THD layout of MariaDB {version} unknown ({why}; build id not in dbflight's table): user and database are null"
                ),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Debian 12 mariadbd 10.11.19, objdump -d.
    const USER: &[u8] = &[
        0x48, 0x8b, 0x87, 0xf8, 0x25, 0, 0, 0x48, 0x85, 0xc0, 0x74, 0x04, 0x48, 0x8b, 0x40, 0x08,
        0xc3,
    ];
    const HOST: &[u8] = &[
        0x48, 0x8b, 0x87, 0xf8, 0x25, 0, 0, 0x48, 0x85, 0xc0, 0x74, 0x03, 0x48, 0x8b, 0x00, 0xc3,
    ];
    const IP: &[u8] = &[
        0x48, 0x8b, 0x87, 0xf8, 0x25, 0, 0, 0x48, 0x85, 0xc0, 0x74, 0x04, 0x48, 0x8b, 0x40, 0x10,
        0xc3,
    ];
    const DB: &[u8] = &[0x48, 0x8d, 0x87, 0xa0, 0, 0, 0, 0xc3, 0x0f, 0x1f];
    const THREAD_ID: &[u8] = &[0x48, 0x8b, 0x87, 0x18, 0x3f, 0, 0, 0xc3];

    #[test]
    fn decodes_debian_accessors() {
        assert_eq!(
            decode_accessor(USER),
            Some(Access::Indirect {
                outer: 0x25f8,
                inner: 8
            })
        );
        assert_eq!(
            decode_accessor(HOST),
            Some(Access::Indirect {
                outer: 0x25f8,
                inner: 0
            })
        );
        assert_eq!(decode_accessor(DB), Some(Access::Member(0xa0)));
        assert_eq!(
            decode_accessor(THREAD_ID),
            Some(Access::Field {
                off: 0x3f18,
                size: 8
            })
        );
        // endbr64 first, a disp8 load, a 32-bit load.
        let mut cet = vec![0xf3, 0x0f, 0x1e, 0xfa];
        cet.extend_from_slice(&[0x8b, 0x47, 0x10, 0xc3]);
        assert_eq!(
            decode_accessor(&cet),
            Some(Access::Field { off: 0x10, size: 4 })
        );
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        // thd_priv_user: a stack frame and a call to strlen.
        let priv_user = [0x55, 0x48, 0x89, 0xe5, 0x41, 0x54, 0x49, 0x89, 0xf4];
        assert_eq!(decode_accessor(&priv_user), None);
        // RIP-relative load (a global, not a THD field).
        assert_eq!(decode_accessor(&[0x48, 0x8b, 0x05, 1, 2, 3, 4, 0xc3]), None);
        // Load from another register than the THD's.
        assert_eq!(decode_accessor(&[0x48, 0x8b, 0x46, 0x10, 0xc3]), None);
        // Returns the THD itself; cut short; backward jump.
        assert_eq!(
            decode_accessor(&[0x48, 0x8d, 0x07, 0xc3]),
            Some(Access::Member(0))
        );
        assert_eq!(decode_accessor(&[0x48, 0x8b, 0x87, 0xf8]), None);
        assert_eq!(decode_accessor(&[0x74, 0xfe, 0xc3]), None);
        assert_eq!(decode_accessor(&[0xc3]), None);
    }

    fn code_of<'a>(table: &'a [(&'a str, &'a [u8])]) -> impl Fn(&str) -> Option<Vec<u8>> + 'a {
        move |n| table.iter().find(|(m, _)| *m == n).map(|(_, c)| c.to_vec())
    }

    #[test]
    fn layout_from_the_five_accessors() {
        let all = [
            ("thd_user_name", USER),
            ("thd_client_host", HOST),
            ("thd_client_ip", IP),
            ("thd_current_db", DB),
            ("thd_get_thread_id", THREAD_ID),
        ];
        let l = layout_from_accessors(&code_of(&all)).unwrap();
        assert_eq!(l, KNOWN_BUILDS[0].2, "the table agrees with the decoder");
        // One missing or disagreeing accessor: no layout at all.
        let e = layout_from_accessors(&code_of(&all[..4])).unwrap_err();
        assert!(e.contains("thd_get_thread_id"), "{e}");
        let mut swapped = all;
        swapped[2].1 = USER;
        assert!(layout_from_accessors(&code_of(&swapped)).is_err());
        swapped = all;
        swapped[3].1 = THREAD_ID;
        assert!(
            layout_from_accessors(&code_of(&swapped)).is_ok(),
            "a char * db"
        );
        swapped[4].1 = DB;
        assert!(layout_from_accessors(&code_of(&swapped)).is_err());
    }

    #[test]
    fn layout_of_the_installed_mariadbd() {
        let path = Path::new("/usr/sbin/mariadbd");
        let Ok(elf) = ElfInfo::from_path(path) else {
            eprintln!("SKIPPED: {} not installed", path.display());
            return;
        };
        let (family, version) = crate::mysql::target::server_version(path).unwrap();
        let (l, how) = thd_layout(&elf, path, family, &version);
        assert!(l.is_some(), "{how}");
        assert!(how.contains("from the binary's thd_user_name"), "{how}");
        if elf.build_id() == Some(KNOWN_BUILDS[0].0) {
            assert_eq!(l, Some(KNOWN_BUILDS[0].2));
        }
        let (l, how) = thd_layout(&elf, path, Family::Mysql, "8.0.36");
        assert!(l.is_none() && how.contains("null"), "{how}");
        // A binary without the accessors and not in the table: nothing.
        let me = std::env::current_exe().unwrap();
        let elf = ElfInfo::from_path(&me).unwrap();
        let (l, how) = thd_layout(&elf, &me, Family::MariaDb, "10.11.19");
        assert!(l.is_none(), "{how}");
        assert!(how.contains("unknown") && how.contains("null"), "{how}");
    }

    #[test]
    fn decodes_session_events() {
        let mut buf = vec![0u8; size_of::<SessionEvent>()];
        buf[24..32].copy_from_slice(&0x7f00u64.to_le_bytes());
        buf[32..40].copy_from_slice(&42u64.to_le_bytes());
        buf[40..45].copy_from_slice(b"alice");
        let ip = 40 + MYSQL_USER_CAP + MYSQL_HOST_CAP;
        buf[ip..ip + 9].copy_from_slice(b"127.0.0.1");
        let db = ip + MYSQL_IP_CAP;
        buf[db..db + 4].copy_from_slice(b"shop");
        let s = decode_session(&buf).unwrap();
        assert_eq!(
            s,
            MysqlSession {
                thd: 0x7f00,
                connection_id: 42,
                user: Some("alice".into()),
                host: None,
                ip: Some("127.0.0.1".into()),
                database: Some("shop".into()),
            }
        );
        assert!(decode_session(&buf[..100]).is_none());
    }
}
