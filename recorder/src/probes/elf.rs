//! What the recorder needs to know about a target's ELF binary, read once.
//!
//! Attaching uprobes and USDT probes needs a few facts about the database
//! server's executable: its build id (recorded in the manifest so a trace
//! names the exact binary), whether it is position independent, where its
//! exported functions and globals live, how a virtual address maps to a
//! file offset (uprobes are placed by file offset), and its
//! `.note.stapsdt` probes (decoded by [`crate::probes::usdt`]). [`ElfInfo`] parses
//! the file once and keeps only owned data, so it can outlive the bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{
    Dyn as _, ElfFile64, FileHeader as _, ProgramHeader as _, SectionHeader as _,
};
use object::{Endianness, Object as _, ObjectSymbol as _};

use crate::probes::usdt::{self, ProbeLayout, UsdtError, UsdtProbe};

/// Errors from reading an ELF file or its USDT notes.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file that was read.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a well-formed 64-bit ELF file.
    #[error("not a well-formed 64-bit ELF file")]
    Parse(#[source] object::read::Error),
    /// Something went wrong in a named file; the source says what.
    #[error("in {}", path.display())]
    File {
        /// The file being parsed.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: Box<ElfError>,
    },
    /// The `.note.stapsdt` notes could not be decoded.
    #[error(transparent)]
    Usdt(#[from] UsdtError),
}

/// A defined symbol: its link-time virtual address and size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol {
    /// Link-time virtual address (`st_value`).
    pub vaddr: u64,
    /// Size in bytes (`st_size`), 0 when unknown.
    pub size: u64,
}

/// A `PT_LOAD` program header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    vaddr: u64,
    offset: u64,
    filesz: u64,
}

/// An allocated section that has bytes in the file (not `SHT_NOBITS`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Section {
    name: String,
    addr: u64,
    offset: u64,
    size: u64,
}

/// Facts about one ELF64 file, parsed once. See the module docs.
#[derive(Debug, Clone)]
pub struct ElfInfo {
    build_id: Option<String>,
    machine: u16,
    is_dyn: bool,
    is_pie: bool,
    little_endian: bool,
    segments: Vec<Segment>,
    sections: Vec<Section>,
    symbols: HashMap<String, Symbol>,
    stapsdt_base: Option<u64>,
    /// Contents of `.note.stapsdt` and the section's alignment.
    stapsdt_notes: Option<(Vec<u8>, u64)>,
}

impl ElfInfo {
    /// Reads and parses the ELF file at `path`; errors name the path.
    pub fn from_path(path: &Path) -> Result<Self, ElfError> {
        let data = std::fs::read(path).map_err(|source| ElfError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&data).map_err(|e| ElfError::File {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    /// Parses an ELF64 file (either byte order) from its bytes.
    pub fn parse(data: &[u8]) -> Result<Self, ElfError> {
        let file = ElfFile64::<Endianness>::parse(data).map_err(ElfError::Parse)?;
        let endian = file.endian();
        let header = file.elf_header();
        let machine = header.e_machine(endian);
        let is_dyn = header.e_type(endian) == elf::ET_DYN;

        let mut segments = Vec::new();
        let mut has_interp = false;
        for ph in file.elf_program_headers() {
            match ph.p_type(endian) {
                elf::PT_LOAD => segments.push(Segment {
                    vaddr: ph.p_vaddr(endian),
                    offset: ph.p_offset(endian),
                    filesz: ph.p_filesz(endian),
                }),
                elf::PT_INTERP => has_interp = true,
                _ => {}
            }
        }

        let table = file.elf_section_table();
        let mut sections = Vec::new();
        let mut stapsdt_base = None;
        let mut stapsdt_notes = None;
        for sh in table.iter() {
            let name = table.section_name(endian, sh).map_err(ElfError::Parse)?;
            let name = String::from_utf8_lossy(name).into_owned();
            if name == ".stapsdt.base" {
                stapsdt_base = Some(sh.sh_addr(endian));
            }
            if name == ".note.stapsdt" && sh.sh_type(endian) == elf::SHT_NOTE {
                let bytes = sh.data(endian, data).map_err(ElfError::Parse)?;
                stapsdt_notes = Some((bytes.to_vec(), sh.sh_addralign(endian)));
            }
            let alloc = sh.sh_flags(endian) & u64::from(elf::SHF_ALLOC) != 0;
            if alloc && sh.sh_type(endian) != elf::SHT_NOBITS && sh.sh_addr(endian) != 0 {
                sections.push(Section {
                    name,
                    addr: sh.sh_addr(endian),
                    offset: sh.sh_offset(endian),
                    size: sh.sh_size(endian),
                });
            }
        }

        let mut flagged_pie = false;
        if let Some((entries, _)) = table.dynamic(endian, data).map_err(ElfError::Parse)? {
            flagged_pie = entries.iter().any(|d| {
                d.d_tag(endian) == u64::from(elf::DT_FLAGS_1)
                    && d.d_val(endian) & u64::from(elf::DF_1_PIE) != 0
            });
        }

        // .dynsym first: on a stripped binary it is all there is, and where
        // both tables hold a name the exported definition is the one wanted.
        let mut symbols = HashMap::new();
        for sym in file.dynamic_symbols().chain(file.symbols()) {
            if sym.is_undefined() {
                continue;
            }
            let Ok(name) = sym.name() else { continue };
            if name.is_empty() {
                continue;
            }
            symbols.entry(name.to_owned()).or_insert(Symbol {
                vaddr: sym.address(),
                size: sym.size(),
            });
        }

        let build_id = file
            .build_id()
            .map_err(ElfError::Parse)?
            .map(|id| id.iter().map(|b| format!("{b:02x}")).collect());

        Ok(Self {
            build_id,
            machine,
            is_dyn,
            is_pie: is_dyn && (has_interp || flagged_pie),
            little_endian: endian == Endianness::Little,
            segments,
            sections,
            symbols,
            stapsdt_base,
            stapsdt_notes,
        })
    }

    /// The GNU build id (`NT_GNU_BUILD_ID`) in lowercase hex, if present.
    pub fn build_id(&self) -> Option<&str> {
        self.build_id.as_deref()
    }

    /// `e_machine` (62 for x86-64).
    pub fn machine(&self) -> u16 {
        self.machine
    }

    /// Whether the file is `ET_DYN` (a PIE executable or a shared library).
    pub fn is_dyn(&self) -> bool {
        self.is_dyn
    }

    /// Whether the file is a position-independent executable: `ET_DYN` with
    /// an interpreter or the `DF_1_PIE` flag.
    pub fn is_pie(&self) -> bool {
        self.is_pie
    }

    /// The defined symbol called exactly `name`, from `.dynsym` or `.symtab`.
    pub fn symbol(&self, name: &str) -> Option<Symbol> {
        self.symbols.get(name).copied()
    }

    /// The file offset of `vaddr`, via the `PT_LOAD` segment whose file
    /// bytes contain it (`vaddr - p_vaddr + p_offset`). `None` when no
    /// segment has file bytes there (for example `.bss`).
    pub fn vaddr_to_file_offset(&self, vaddr: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| vaddr >= s.vaddr && vaddr - s.vaddr < s.filesz)
            .map(|s| vaddr - s.vaddr + s.offset)
    }

    /// The USDT probes of `.note.stapsdt`, empty when the file has none.
    pub fn usdt_probes(&self) -> Result<Vec<UsdtProbe>, ElfError> {
        let Some((notes, align)) = &self.stapsdt_notes else {
            return Ok(Vec::new());
        };
        let notes = usdt::parse_notes(notes, *align, self.little_endian)?;
        Ok(usdt::resolve_probes(notes, self)?)
    }
}

impl ProbeLayout for ElfInfo {
    fn stapsdt_base(&self) -> Option<u64> {
        self.stapsdt_base
    }

    fn vaddr_to_file_offset(&self, vaddr: u64) -> Option<u64> {
        ElfInfo::vaddr_to_file_offset(self, vaddr)
    }

    fn section_file_offset(&self, vaddr: u64) -> Option<u64> {
        self.sections
            .iter()
            .find(|s| vaddr >= s.addr && vaddr - s.addr < s.size)
            .map(|s| vaddr - s.addr + s.offset)
    }

    fn symbol_vaddr(&self, name: &str) -> Option<u64> {
        self.symbol(name).map(|s| s.vaddr)
    }

    fn machine(&self) -> u16 {
        self.machine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POSTGRES: &str = "/usr/lib/postgresql/15/bin/postgres";

    fn postgres() -> Option<ElfInfo> {
        let path = Path::new(POSTGRES);
        if !path.exists() {
            eprintln!("skipped: {POSTGRES} is not installed");
            return None;
        }
        Some(ElfInfo::from_path(path).expect("parse postgres"))
    }

    #[test]
    fn errors_name_the_path() {
        let missing = Path::new("/nonexistent/dbflight/postgres");
        let err = ElfInfo::from_path(missing).expect_err("missing file");
        assert_eq!(
            err.to_string(),
            "cannot read /nonexistent/dbflight/postgres"
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("junk");
        std::fs::write(&path, b"#!/bin/sh\necho not elf\n").expect("write");
        let err = ElfInfo::from_path(&path).expect_err("not ELF");
        assert_eq!(err.to_string(), format!("in {}", path.display()));
        let source = std::error::Error::source(&err).expect("source");
        assert_eq!(source.to_string(), "not a well-formed 64-bit ELF file");
    }

    #[test]
    fn rejects_garbage_bytes() {
        for data in [&b""[..], b"\x7fELF", b"\x7fELF\x01\x01\x01", &[0u8; 64]] {
            assert!(ElfInfo::parse(data).is_err(), "{data:?}");
        }
    }

    #[test]
    fn own_test_binary_parses() {
        // The test executable itself is an ELF64 file on Linux.
        let exe = std::env::current_exe().expect("current_exe");
        let info = ElfInfo::from_path(&exe).expect("parse self");
        assert!(!info.segments.is_empty());
    }

    #[test]
    fn postgres_identity() {
        let Some(pg) = postgres() else { return };
        let id = pg.build_id().expect("build id");
        assert_eq!(id.len(), 40, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert!(pg.is_dyn());
        assert!(pg.is_pie());
        assert_eq!(pg.machine(), elf::EM_X86_64);
    }

    #[test]
    fn postgres_symbols() {
        let Some(pg) = postgres() else { return };
        let cases = [
            ("debug_query_string", Some(8)),
            ("ExecInitNode", None),
            ("LockAcquireExtended", None),
            ("PortalRun", None),
        ];
        for (name, size) in cases {
            let sym = pg.symbol(name).unwrap_or_else(|| panic!("{name} missing"));
            assert_ne!(sym.vaddr, 0, "{name}");
            if let Some(size) = size {
                assert_eq!(sym.size, size, "{name}");
            }
        }
        assert_eq!(pg.symbol("debug_query_strin"), None);
        assert_eq!(pg.symbol("no_such_symbol_anywhere"), None);
        // Imported, not defined here.
        assert_eq!(pg.symbol("malloc"), None);
    }

    #[test]
    fn postgres_offsets_equal_vaddrs() {
        let Some(pg) = postgres() else { return };
        // Debian's postgres has PT_LOADs with p_vaddr == p_offset.
        for probe in pg.usdt_probes().expect("probes") {
            assert_eq!(
                pg.vaddr_to_file_offset(probe.pc_vaddr),
                Some(probe.pc_vaddr)
            );
            assert_eq!(probe.pc_file_offset, probe.pc_vaddr);
        }
        let sym = pg.symbol("ExecInitNode").expect("ExecInitNode");
        assert_eq!(pg.vaddr_to_file_offset(sym.vaddr), Some(sym.vaddr));
        assert_eq!(pg.vaddr_to_file_offset(u64::MAX), None);
        // .bss has no file bytes.
        let bss = pg.symbol("debug_query_string").expect("debug_query_string");
        assert_eq!(pg.vaddr_to_file_offset(bss.vaddr), None);
    }

    #[test]
    fn segment_lookup_table() {
        let info = ElfInfo {
            build_id: None,
            machine: elf::EM_X86_64,
            is_dyn: true,
            is_pie: true,
            little_endian: true,
            segments: vec![
                Segment {
                    vaddr: 0x0,
                    offset: 0x0,
                    filesz: 0x1000,
                },
                Segment {
                    vaddr: 0x2000,
                    offset: 0x1000,
                    filesz: 0x800,
                },
                Segment {
                    vaddr: 0x4010,
                    offset: 0x3010,
                    filesz: 0x10,
                },
            ],
            sections: vec![],
            symbols: HashMap::new(),
            stapsdt_base: None,
            stapsdt_notes: None,
        };
        let cases = [
            (0x0, Some(0x0)),
            (0xfff, Some(0xfff)),
            (0x1000, None),
            (0x2000, Some(0x1000)),
            (0x27ff, Some(0x17ff)),
            (0x2800, None),
            (0x401f, Some(0x301f)),
            (0x4020, None),
            (u64::MAX, None),
        ];
        for (vaddr, want) in cases {
            assert_eq!(info.vaddr_to_file_offset(vaddr), want, "{vaddr:#x}");
        }
        assert!(info.usdt_probes().expect("no notes").is_empty());
    }
}
