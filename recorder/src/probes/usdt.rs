//! USDT (SystemTap SDT) probes: `.note.stapsdt` notes and argument specs.
//!
//! Debian's PostgreSQL carries static probes such as `query__start`. Each
//! is a note (owner `stapsdt`, type 3) whose descriptor holds the probe's
//! address, the link-time address of `.stapsdt.base`, the address of its
//! semaphore, and the strings provider, name and argument specs (`8@%rbx`,
//! `-4@$1`, `8@-144(%rbp)`). This module decodes those notes the way
//! libbpf's `usdt.c` does — including the prelink adjustment and the
//! file-offset arithmetic uprobes need — and turns each x86-64 argument
//! spec into a location the BPF side can read from `struct pt_regs`.
//!
//! It is pure: the ELF facts it needs come through [`ProbeLayout`], which
//! [`crate::probes::elf::ElfInfo`] implements and tests fake.

/// Note type of SystemTap SDT v3 notes.
pub const NT_STAPSDT: u32 = 3;

/// Note owner of SystemTap SDT notes.
const STAPSDT_OWNER: &[u8] = b"stapsdt";

/// Byte offset of `ip` (`rip`) in the x86-64 kernel `struct pt_regs`.
pub const PT_REGS_RIP: u16 = 128;

/// Errors decoding USDT notes or argument specs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsdtError {
    /// The note section ends in the middle of a note.
    #[error("truncated note at byte {offset} of .note.stapsdt")]
    TruncatedNote {
        /// Byte offset of the note's header within the section.
        offset: usize,
    },
    /// A stapsdt note's descriptor is malformed.
    #[error("malformed stapsdt note at byte {offset}: {reason}")]
    BadNote {
        /// Byte offset of the note's header within the section.
        offset: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A probe's address lies in no loadable segment of the file.
    #[error("probe {provider}:{name} at {pc:#x} lies in no loadable segment")]
    ProbeOutsideSegments {
        /// Probe provider.
        provider: String,
        /// Probe name.
        name: String,
        /// The probe's (adjusted) virtual address.
        pc: u64,
    },
    /// Argument specs are decoded for x86-64 only.
    #[error("USDT argument specs are only understood for x86-64 (ELF machine {machine})")]
    UnsupportedArch {
        /// `e_machine` of the file.
        machine: u16,
    },
    /// An argument spec lacks its `SIZE@` prefix.
    #[error("argument `{spec}` has no SIZE@ prefix")]
    MissingSize {
        /// The offending spec.
        spec: String,
    },
    /// An argument's size is not 1, 2, 4 or 8 bytes.
    #[error(
        "argument `{spec}` has unsupported size {size} (expected 1, 2, 4 or 8, negative if signed)"
    )]
    BadSize {
        /// The offending spec.
        spec: String,
        /// The size as written.
        size: String,
    },
    /// An argument names a register that is not an x86-64 general register.
    #[error("argument `{spec}` names unknown x86-64 register `%{register}`")]
    UnknownRegister {
        /// The offending spec.
        spec: String,
        /// The register name, without `%`.
        register: String,
    },
    /// An argument uses base+index*scale addressing.
    #[error("argument `{spec}` uses base+index*scale addressing, which is not supported")]
    IndexedOperand {
        /// The offending spec.
        spec: String,
    },
    /// An argument's address is relative to a symbol, and either no symbol
    /// table was at hand, the symbol is not defined, or the base register
    /// is not `%rip`.
    #[error("argument `{spec}` refers to symbol `{symbol}`: {reason}")]
    SymbolicOperand {
        /// The offending spec.
        spec: String,
        /// The symbol it refers to.
        symbol: String,
        /// Why it could not be resolved.
        reason: &'static str,
    },
    /// An argument spec that matches none of the supported forms.
    #[error("argument `{spec}` is not SIZE@%reg, SIZE@off(%reg) or SIZE@$imm")]
    Malformed {
        /// The offending spec.
        spec: String,
    },
}

/// One stapsdt note as written in the file, before any adjustment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StapsdtNote {
    /// Probe provider (`postgresql`).
    pub provider: String,
    /// Probe name (`query__start`).
    pub name: String,
    /// Link-time address of the probe instruction.
    pub pc: u64,
    /// Link-time address of `.stapsdt.base` when the note was written.
    pub base: u64,
    /// Link-time address of the semaphore, 0 if none.
    pub semaphore: u64,
    /// The argument specs, space separated.
    pub args: String,
}

/// Where an argument's value is found when the probe fires (x86-64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgLocation {
    /// An immediate value (`$imm`).
    Const(i64),
    /// The value of a register (`%reg`); `reg_off` is its byte offset in
    /// the kernel's `struct pt_regs`.
    Reg {
        /// Byte offset of the register in `struct pt_regs`.
        reg_off: u16,
    },
    /// The value in memory at register + offset (`off(%reg)`).
    RegDeref {
        /// Byte offset of the base register in `struct pt_regs`.
        reg_off: u16,
        /// Displacement added to the register's value.
        offset: i64,
    },
}

/// One decoded argument spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsdtArg {
    /// Size in bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// Whether the value is signed (the spec's size was negative).
    pub signed: bool,
    /// Where the value lives.
    pub loc: ArgLocation,
}

impl UsdtArg {
    /// `64 - size * 8`: shift the 64-bit raw value left then right by this
    /// (arithmetic if signed) to sign- or zero-extend it.
    pub fn bitshift(&self) -> u8 {
        64 - self.size * 8
    }
}

/// A probe ready to attach: addresses adjusted and turned into file offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsdtProbe {
    /// Probe provider (`postgresql`).
    pub provider: String,
    /// Probe name (`query__start`).
    pub name: String,
    /// Virtual address of the probe, after the prelink adjustment.
    pub pc_vaddr: u64,
    /// File offset of the probe: where the uprobe goes.
    pub pc_file_offset: u64,
    /// Virtual address of the semaphore, after the prelink adjustment; 0
    /// when the probe has none.
    pub semaphore_vaddr: u64,
    /// File offset of the semaphore (the uprobe's `ref_ctr_offset`); `None`
    /// when there is no semaphore or it has no bytes in the file.
    pub semaphore_file_offset: Option<u64>,
    /// The argument specs as written in the note.
    pub args_spec: String,
    /// The decoded arguments. An error here concerns this probe only (an
    /// addressing form that is not supported): the other probes are usable.
    pub args: Result<Vec<UsdtArg>, UsdtError>,
}

/// What resolving notes into probes needs to know about their ELF file.
pub trait ProbeLayout {
    /// Address of the `.stapsdt.base` section, if the file has one.
    fn stapsdt_base(&self) -> Option<u64>;
    /// File offset of `vaddr` via the `PT_LOAD` segment containing it.
    fn vaddr_to_file_offset(&self, vaddr: u64) -> Option<u64>;
    /// File offset of `vaddr` via the allocated section containing it.
    fn section_file_offset(&self, vaddr: u64) -> Option<u64>;
    /// Virtual address of the defined symbol `name`.
    fn symbol_vaddr(&self, name: &str) -> Option<u64>;
    /// `e_machine` of the file; arguments are decoded for x86-64 only.
    fn machine(&self) -> u16;
}

/// Decodes the stapsdt notes of a `.note.stapsdt` section. Notes of other
/// owners or types are skipped. `align` is the section's alignment (notes
/// are padded to 4 bytes, or 8 when the section says so).
pub fn parse_notes(
    section: &[u8],
    align: u64,
    little_endian: bool,
) -> Result<Vec<StapsdtNote>, UsdtError> {
    let align = if align == 8 { 8 } else { 4 };
    let u32_at = |at: usize| -> Option<u32> {
        let bytes: [u8; 4] = section.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if little_endian {
            u32::from_le_bytes(bytes)
        } else {
            u32::from_be_bytes(bytes)
        })
    };
    let mut notes = Vec::new();
    let mut pos = 0;
    while pos < section.len() {
        let start = pos;
        let truncated = UsdtError::TruncatedNote { offset: start };
        let (Some(namesz), Some(descsz), Some(kind)) =
            (u32_at(pos), u32_at(pos + 4), u32_at(pos + 8))
        else {
            return Err(truncated);
        };
        let name_at = pos + 12;
        let name_end = name_at
            .checked_add(namesz as usize)
            .ok_or(truncated.clone())?;
        let desc_at = align_up(name_end, align).ok_or(truncated.clone())?;
        let desc_end = desc_at
            .checked_add(descsz as usize)
            .ok_or(truncated.clone())?;
        let (Some(name), Some(desc)) = (
            section.get(name_at..name_end),
            section.get(desc_at..desc_end),
        ) else {
            return Err(truncated);
        };
        pos = align_up(desc_end, align)
            .ok_or(truncated)?
            .min(section.len());

        let owner = name.strip_suffix(b"\0").unwrap_or(name);
        if owner != STAPSDT_OWNER || kind != NT_STAPSDT {
            continue;
        }
        notes.push(parse_desc(desc, little_endian, start)?);
    }
    Ok(notes)
}

fn align_up(n: usize, align: usize) -> Option<usize> {
    Some(n.checked_add(align - 1)? & !(align - 1))
}

fn parse_desc(desc: &[u8], little_endian: bool, offset: usize) -> Result<StapsdtNote, UsdtError> {
    let bad = |reason| UsdtError::BadNote { offset, reason };
    let u64_at = |at: usize| -> Option<u64> {
        let bytes: [u8; 8] = desc.get(at..at + 8)?.try_into().ok()?;
        Some(if little_endian {
            u64::from_le_bytes(bytes)
        } else {
            u64::from_be_bytes(bytes)
        })
    };
    let (Some(pc), Some(base), Some(semaphore)) = (u64_at(0), u64_at(8), u64_at(16)) else {
        return Err(bad("descriptor shorter than its three addresses"));
    };
    let mut strings = desc.get(24..).unwrap_or_default().split(|&b| b == 0);
    let mut next = |what| {
        strings
            .next()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .ok_or(bad(what))
    };
    let provider = next("no provider")?;
    let name = next("no probe name")?;
    // Arguments may be missing altogether in hand-written notes.
    let args = next("no argument specs").unwrap_or_default();
    if !desc.ends_with(b"\0") {
        return Err(bad("strings are not NUL terminated"));
    }
    if provider.is_empty() || name.is_empty() {
        return Err(bad("empty provider or probe name"));
    }
    Ok(StapsdtNote {
        provider,
        name,
        pc,
        base,
        semaphore,
        args,
    })
}

/// Turns notes into attachable probes: applies the prelink adjustment (when
/// `.stapsdt.base` sits elsewhere than the note recorded, pc and semaphore
/// move by the difference), computes file offsets (pc via its `PT_LOAD`;
/// semaphore via its section, else its `PT_LOAD`) and decodes arguments,
/// resolving symbol-relative `sym(%rip)` operands against the file.
pub fn resolve_probes(
    notes: Vec<StapsdtNote>,
    layout: &impl ProbeLayout,
) -> Result<Vec<UsdtProbe>, UsdtError> {
    let section_base = layout.stapsdt_base();
    notes
        .into_iter()
        .map(|note| {
            let shift = match section_base {
                Some(addr) if note.base != 0 && addr != note.base => addr.wrapping_sub(note.base),
                _ => 0,
            };
            let pc_vaddr = note.pc.wrapping_add(shift);
            let semaphore_vaddr = match note.semaphore {
                0 => 0,
                sema => sema.wrapping_add(shift),
            };
            let Some(pc_file_offset) = layout.vaddr_to_file_offset(pc_vaddr) else {
                return Err(UsdtError::ProbeOutsideSegments {
                    provider: note.provider,
                    name: note.name,
                    pc: pc_vaddr,
                });
            };
            let semaphore_file_offset = match semaphore_vaddr {
                0 => None,
                sema => layout
                    .section_file_offset(sema)
                    .or_else(|| layout.vaddr_to_file_offset(sema)),
            };
            let args = match layout.machine() {
                object::elf::EM_X86_64 => parse_args_at(&note.args, pc_vaddr, layout),
                machine => Err(UsdtError::UnsupportedArch { machine }),
            };
            Ok(UsdtProbe {
                provider: note.provider,
                name: note.name,
                pc_vaddr,
                pc_file_offset,
                semaphore_vaddr,
                semaphore_file_offset,
                args_spec: note.args,
                args,
            })
        })
        .collect()
}

/// Decodes space-separated x86-64 argument specs; `""` gives no arguments.
pub fn parse_args(specs: &str) -> Result<Vec<UsdtArg>, UsdtError> {
    specs.split_whitespace().map(parse_arg_spec).collect()
}

/// Decodes one x86-64 argument spec: `N@%reg`, `N@off(%reg)`, `N@(%reg)` or
/// `N@$imm`, with N one of 1, 2, 4, 8 (negative: signed). Symbol-relative
/// operands (`4@NBuffers(%rip)`) need the ELF file and are refused here;
/// [`crate::probes::elf::ElfInfo::usdt_probes`] resolves them.
pub fn parse_arg_spec(spec: &str) -> Result<UsdtArg, UsdtError> {
    let raw = parse_raw(spec)?;
    match raw.loc {
        RawLocation::Const(v) => Ok(raw.with(ArgLocation::Const(v))),
        RawLocation::Reg(reg_off) => Ok(raw.with(ArgLocation::Reg { reg_off })),
        RawLocation::Deref {
            reg_off,
            symbol: None,
            offset,
        } => Ok(raw.with(ArgLocation::RegDeref { reg_off, offset })),
        RawLocation::Deref {
            symbol: Some(symbol),
            ..
        } => Err(UsdtError::SymbolicOperand {
            spec: spec.to_owned(),
            symbol: symbol.to_owned(),
            reason: "resolving it needs the ELF symbol table",
        }),
    }
}

/// Like [`parse_args`], resolving `sym+k(%rip)` against `layout` for the
/// probe at `pc`. When the probe fires `ip` holds the runtime address of
/// `pc`, so the operand is `ip + (sym + k - pc)` whatever the load bias.
fn parse_args_at(
    specs: &str,
    pc: u64,
    layout: &impl ProbeLayout,
) -> Result<Vec<UsdtArg>, UsdtError> {
    specs
        .split_whitespace()
        .map(|spec| {
            let raw = parse_raw(spec)?;
            let RawLocation::Deref {
                reg_off,
                symbol: Some(symbol),
                offset,
            } = raw.loc
            else {
                return parse_arg_spec(spec);
            };
            let refuse = |reason| UsdtError::SymbolicOperand {
                spec: spec.to_owned(),
                symbol: symbol.to_owned(),
                reason,
            };
            if reg_off != PT_REGS_RIP {
                return Err(refuse("only %rip-relative symbols are supported"));
            }
            let sym = layout
                .symbol_vaddr(symbol)
                .ok_or_else(|| refuse("no such symbol in .dynsym or .symtab"))?;
            let offset = (sym.wrapping_sub(pc) as i64).wrapping_add(offset);
            Ok(raw.with(ArgLocation::RegDeref { reg_off, offset }))
        })
        .collect()
}

/// A spec split into its parts, the displacement possibly symbolic.
struct RawArg<'a> {
    size: u8,
    signed: bool,
    loc: RawLocation<'a>,
}

enum RawLocation<'a> {
    Const(i64),
    Reg(u16),
    Deref {
        reg_off: u16,
        symbol: Option<&'a str>,
        offset: i64,
    },
}

impl RawArg<'_> {
    fn with(&self, loc: ArgLocation) -> UsdtArg {
        UsdtArg {
            size: self.size,
            signed: self.signed,
            loc,
        }
    }
}

fn parse_raw(spec: &str) -> Result<RawArg<'_>, UsdtError> {
    let malformed = || UsdtError::Malformed {
        spec: spec.to_owned(),
    };
    let Some((size_text, operand)) = spec.split_once('@') else {
        return Err(UsdtError::MissingSize {
            spec: spec.to_owned(),
        });
    };
    let size_text = size_text.trim();
    let bad_size = || UsdtError::BadSize {
        spec: spec.to_owned(),
        size: size_text.to_owned(),
    };
    let (signed, magnitude) = match size_text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, size_text.strip_prefix('+').unwrap_or(size_text)),
    };
    if magnitude.is_empty() || !magnitude.bytes().all(|b| b.is_ascii_digit()) {
        return Err(if size_text.is_empty() {
            UsdtError::MissingSize {
                spec: spec.to_owned(),
            }
        } else {
            bad_size()
        });
    }
    let size = match magnitude.trim_start_matches('0') {
        "1" => 1,
        "2" => 2,
        "4" => 4,
        "8" => 8,
        _ => return Err(bad_size()),
    };
    let operand = operand.trim();
    let register = |name: &str| {
        x86_64_reg_off(name).ok_or_else(|| UsdtError::UnknownRegister {
            spec: spec.to_owned(),
            register: name.to_owned(),
        })
    };

    let loc = if let Some(imm) = operand.strip_prefix('$') {
        RawLocation::Const(parse_int(imm).ok_or_else(malformed)?)
    } else if let Some(reg) = operand.strip_prefix('%') {
        RawLocation::Reg(register(reg)?)
    } else if let Some((disp, rest)) = operand.split_once('(') {
        let inner = rest.strip_suffix(')').ok_or_else(malformed)?;
        if inner.contains(',') {
            return Err(UsdtError::IndexedOperand {
                spec: spec.to_owned(),
            });
        }
        let reg = inner.trim().strip_prefix('%').ok_or_else(malformed)?;
        let reg_off = register(reg)?;
        let (symbol, offset) = parse_displacement(disp.trim()).ok_or_else(malformed)?;
        RawLocation::Deref {
            reg_off,
            symbol,
            offset,
        }
    } else {
        return Err(malformed());
    };
    Ok(RawArg { size, signed, loc })
}

/// A displacement: empty, an integer, `sym`, `sym+k`, `sym-k` or `k+sym`.
fn parse_displacement(disp: &str) -> Option<(Option<&str>, i64)> {
    if disp.is_empty() {
        return Some((None, 0));
    }
    if let Some(n) = parse_int(disp) {
        return Some((None, n));
    }
    let is_symbol = |s: &str| {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '.')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$')
    };
    // Split at the last + or - that is not the leading character.
    let split = disp
        .char_indices()
        .rev()
        .find(|&(i, c)| i > 0 && (c == '+' || c == '-'));
    if let Some((at, _)) = split {
        let (left, right) = disp.split_at(at);
        if is_symbol(left) {
            return Some((Some(left), parse_int(right)?));
        }
        let right = right.strip_prefix('+')?;
        if is_symbol(right) {
            return Some((Some(right), parse_int(left)?));
        }
        return None;
    }
    is_symbol(disp).then_some((Some(disp), 0))
}

/// A decimal or `0x` hexadecimal integer with an optional sign.
fn parse_int(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let magnitude = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(hex, 16).ok()?
    } else {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<u64>().ok()?
    };
    // Two's complement, as the assembler would encode it.
    let value = magnitude as i64;
    Some(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// Byte offset in the x86-64 kernel `struct pt_regs` of a register named as
/// GAS writes it, any width (the names libbpf's `usdt.c` accepts).
pub fn x86_64_reg_off(name: &str) -> Option<u16> {
    const REGS: &[(&[&str], u16)] = &[
        (&["r15", "r15d", "r15w", "r15b"], 0),
        (&["r14", "r14d", "r14w", "r14b"], 8),
        (&["r13", "r13d", "r13w", "r13b"], 16),
        (&["r12", "r12d", "r12w", "r12b"], 24),
        (&["rbp", "ebp", "bp", "bpl"], 32),
        (&["rbx", "ebx", "bx", "bl"], 40),
        (&["r11", "r11d", "r11w", "r11b"], 48),
        (&["r10", "r10d", "r10w", "r10b"], 56),
        (&["r9", "r9d", "r9w", "r9b"], 64),
        (&["r8", "r8d", "r8w", "r8b"], 72),
        (&["rax", "eax", "ax", "al"], 80),
        (&["rcx", "ecx", "cx", "cl"], 88),
        (&["rdx", "edx", "dx", "dl"], 96),
        (&["rsi", "esi", "si", "sil"], 104),
        (&["rdi", "edi", "di", "dil"], 112),
        (&["rip"], PT_REGS_RIP),
        (&["rsp", "esp", "sp", "spl"], 152),
    ];
    REGS.iter()
        .find(|(names, _)| names.contains(&name))
        .map(|&(_, off)| off)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::elf::ElfInfo;

    const RBP: u16 = 32;
    const RBX: u16 = 40;
    const RAX: u16 = 80;

    fn arg(size: u8, signed: bool, loc: ArgLocation) -> UsdtArg {
        UsdtArg { size, signed, loc }
    }

    fn reg(reg_off: u16) -> ArgLocation {
        ArgLocation::Reg { reg_off }
    }

    fn deref(reg_off: u16, offset: i64) -> ArgLocation {
        ArgLocation::RegDeref { reg_off, offset }
    }

    #[test]
    fn arg_specs() {
        use ArgLocation::Const;
        let cases: &[(&str, UsdtArg)] = &[
            ("8@%rbx", arg(8, false, reg(RBX))),
            ("-8@%rbx", arg(8, true, reg(RBX))),
            ("4@%eax", arg(4, false, reg(RAX))),
            ("-4@%r14d", arg(4, true, reg(8))),
            ("2@%r9w", arg(2, false, reg(64))),
            ("1@%sil", arg(1, false, reg(104))),
            ("1@%dil", arg(1, false, reg(112))),
            ("-1@%al", arg(1, true, reg(RAX))),
            ("8@%rip", arg(8, false, reg(PT_REGS_RIP))),
            ("8@%rsp", arg(8, false, reg(152))),
            ("8@-144(%rbp)", arg(8, false, deref(RBP, -144))),
            ("4@60(%rax)", arg(4, false, deref(RAX, 60))),
            ("-4@4(%r12)", arg(4, true, deref(24, 4))),
            ("8@(%r12)", arg(8, false, deref(24, 0))),
            ("8@0x10(%rdi)", arg(8, false, deref(112, 16))),
            ("8@-0x10(%rdi)", arg(8, false, deref(112, -16))),
            ("4@8(%rip)", arg(4, false, deref(PT_REGS_RIP, 8))),
            ("-4@$1", arg(4, true, Const(1))),
            ("4@$0", arg(4, false, Const(0))),
            ("-4@$-5", arg(4, true, Const(-5))),
            ("4@$8192", arg(4, false, Const(8192))),
            ("8@$0xff", arg(8, false, Const(255))),
            (" 8 @ %rbx ", arg(8, false, reg(RBX))),
        ];
        for (spec, want) in cases {
            assert_eq!(parse_arg_spec(spec).as_ref(), Ok(want), "{spec}");
        }
    }

    #[test]
    fn every_register_name() {
        let groups: &[(&[&str], u16)] = &[
            (&["r15", "r15d", "r15w", "r15b"], 0),
            (&["r14", "r14d", "r14w", "r14b"], 8),
            (&["r13", "r13d", "r13w", "r13b"], 16),
            (&["r12", "r12d", "r12w", "r12b"], 24),
            (&["rbp", "ebp", "bp", "bpl"], 32),
            (&["rbx", "ebx", "bx", "bl"], 40),
            (&["r11", "r11d", "r11w", "r11b"], 48),
            (&["r10", "r10d", "r10w", "r10b"], 56),
            (&["r9", "r9d", "r9w", "r9b"], 64),
            (&["r8", "r8d", "r8w", "r8b"], 72),
            (&["rax", "eax", "ax", "al"], 80),
            (&["rcx", "ecx", "cx", "cl"], 88),
            (&["rdx", "edx", "dx", "dl"], 96),
            (&["rsi", "esi", "si", "sil"], 104),
            (&["rdi", "edi", "di", "dil"], 112),
            (&["rip"], 128),
            (&["rsp", "esp", "sp", "spl"], 152),
        ];
        for (names, off) in groups {
            for name in *names {
                assert_eq!(x86_64_reg_off(name), Some(*off), "{name}");
                let spec = format!("8@%{name}");
                assert_eq!(
                    parse_arg_spec(&spec),
                    Ok(arg(8, false, reg(*off))),
                    "{spec}"
                );
            }
        }
        for name in [
            "ah", "bh", "eip", "ip", "r16", "xmm0", "RAX", "", "cs", "r8l",
        ] {
            assert_eq!(x86_64_reg_off(name), None, "{name}");
        }
    }

    #[test]
    fn bad_arg_specs() {
        let cases: &[(&str, &str)] = &[
            ("%rbx", "argument `%rbx` has no SIZE@ prefix"),
            ("@%rbx", "argument `@%rbx` has no SIZE@ prefix"),
            (
                "3@%rbx",
                "argument `3@%rbx` has unsupported size 3 (expected 1, 2, 4 or 8, negative if signed)",
            ),
            (
                "16@%rbx",
                "argument `16@%rbx` has unsupported size 16 (expected 1, 2, 4 or 8, negative if signed)",
            ),
            (
                "0@%rbx",
                "argument `0@%rbx` has unsupported size 0 (expected 1, 2, 4 or 8, negative if signed)",
            ),
            (
                "x@%rbx",
                "argument `x@%rbx` has unsupported size x (expected 1, 2, 4 or 8, negative if signed)",
            ),
            (
                "8@%xmm0",
                "argument `8@%xmm0` names unknown x86-64 register `%xmm0`",
            ),
            (
                "8@4(%ah)",
                "argument `8@4(%ah)` names unknown x86-64 register `%ah`",
            ),
            (
                "8@(%rax,%rbx,8)",
                "argument `8@(%rax,%rbx,8)` uses base+index*scale addressing, which is not supported",
            ),
            (
                "4@-8(%rbp,%rcx,4)",
                "argument `4@-8(%rbp,%rcx,4)` uses base+index*scale addressing, which is not supported",
            ),
            (
                "8@rbx",
                "argument `8@rbx` is not SIZE@%reg, SIZE@off(%reg) or SIZE@$imm",
            ),
            (
                "8@4(%rbx",
                "argument `8@4(%rbx` is not SIZE@%reg, SIZE@off(%reg) or SIZE@$imm",
            ),
            (
                "8@4(rbx)",
                "argument `8@4(rbx)` is not SIZE@%reg, SIZE@off(%reg) or SIZE@$imm",
            ),
            (
                "8@$",
                "argument `8@$` is not SIZE@%reg, SIZE@off(%reg) or SIZE@$imm",
            ),
            (
                "8@$foo",
                "argument `8@$foo` is not SIZE@%reg, SIZE@off(%reg) or SIZE@$imm",
            ),
            (
                "8@1+(%rbx)",
                "argument `8@1+(%rbx)` is not SIZE@%reg, SIZE@off(%reg) or SIZE@$imm",
            ),
            (
                "8@",
                "argument `8@` is not SIZE@%reg, SIZE@off(%reg) or SIZE@$imm",
            ),
            (
                "-4@NBuffers(%rip)",
                "argument `-4@NBuffers(%rip)` refers to symbol `NBuffers`: resolving it needs the ELF symbol table",
            ),
            (
                "4@52+CheckpointStats(%rip)",
                "argument `4@52+CheckpointStats(%rip)` refers to symbol `CheckpointStats`: resolving it needs the ELF symbol table",
            ),
            (
                "8@żółw",
                "argument `8@żółw` is not SIZE@%reg, SIZE@off(%reg) or SIZE@$imm",
            ),
        ];
        for (spec, message) in cases {
            let err = parse_arg_spec(spec).expect_err(spec);
            assert_eq!(err.to_string(), *message, "{spec}");
        }
    }

    #[test]
    fn arg_lists() {
        let cases: &[(&str, Result<Vec<UsdtArg>, ()>)] = &[
            ("", Ok(vec![])),
            ("   ", Ok(vec![])),
            ("8@%rbx", Ok(vec![arg(8, false, reg(RBX))])),
            (
                "-4@%r14d 8@-144(%rbp)  -4@$1",
                Ok(vec![
                    arg(4, true, reg(8)),
                    arg(8, false, deref(RBP, -144)),
                    arg(4, true, ArgLocation::Const(1)),
                ]),
            ),
            ("8@%rbx 8@(%rax,%rbx,8)", Err(())),
        ];
        for (specs, want) in cases {
            assert_eq!(parse_args(specs).map_err(|_| ()), *want, "{specs:?}");
        }
    }

    #[test]
    fn bitshifts() {
        for (size, shift) in [(1, 56), (2, 48), (4, 32), (8, 0)] {
            assert_eq!(arg(size, true, reg(RAX)).bitshift(), shift);
        }
    }

    /// A parsed displacement: the symbol, if any, and the constant part.
    type Displacement<'a> = Option<(Option<&'a str>, i64)>;

    #[test]
    fn displacements() {
        let cases: &[(&str, Displacement<'_>)] = &[
            ("", Some((None, 0))),
            ("-144", Some((None, -144))),
            ("NBuffers", Some((Some("NBuffers"), 0))),
            ("52+CheckpointStats", Some((Some("CheckpointStats"), 52))),
            ("CheckpointStats+52", Some((Some("CheckpointStats"), 52))),
            ("CheckpointStats-8", Some((Some("CheckpointStats"), -8))),
            ("counter.1+4", Some((Some("counter.1"), 4))),
            ("1+2", None),
            ("a+b", None),
            ("+", None),
        ];
        for (disp, want) in cases {
            assert_eq!(parse_displacement(disp), *want, "{disp:?}");
        }
    }

    /// A fake file: one PT_LOAD mapping [0x1000, 0x9000) at file offset
    /// 0x0, a `.probes` section at 0x8000 stored at 0x7800 (so the section
    /// and segment arithmetic disagree and the test sees which one won).
    struct Fake {
        stapsdt_base: Option<u64>,
        machine: u16,
    }

    impl ProbeLayout for Fake {
        fn stapsdt_base(&self) -> Option<u64> {
            self.stapsdt_base
        }
        fn vaddr_to_file_offset(&self, vaddr: u64) -> Option<u64> {
            (0x1000..0x9000).contains(&vaddr).then(|| vaddr - 0x1000)
        }
        fn section_file_offset(&self, vaddr: u64) -> Option<u64> {
            (0x8000..0x8100)
                .contains(&vaddr)
                .then(|| vaddr - 0x8000 + 0x7800)
        }
        fn symbol_vaddr(&self, name: &str) -> Option<u64> {
            (name == "Counter").then_some(0x8400)
        }
        fn machine(&self) -> u16 {
            self.machine
        }
    }

    fn note(owner: &[u8], kind: u32, desc: &[u8], align: usize) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(owner.len() as u32 + 1).to_le_bytes());
        out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(owner);
        out.push(0);
        while out.len() % align != 0 {
            out.push(0);
        }
        out.extend_from_slice(desc);
        while out.len() % align != 0 {
            out.push(0);
        }
        out
    }

    fn stapsdt(pc: u64, base: u64, sema: u64, provider: &str, name: &str, args: &str) -> Vec<u8> {
        let mut desc = Vec::new();
        for v in [pc, base, sema] {
            desc.extend_from_slice(&v.to_le_bytes());
        }
        for s in [provider, name, args] {
            desc.extend_from_slice(s.as_bytes());
            desc.push(0);
        }
        desc
    }

    fn blob(align: usize) -> Vec<u8> {
        let mut section = Vec::new();
        // A note of another owner and one of another type are skipped.
        section.extend(note(b"GNU", 3, &[0xab; 20], align));
        section.extend(note(b"stapsdt", 1, &[0; 24], align));
        let probes = [
            stapsdt(
                0x2000,
                0x5000,
                0x8010,
                "postgresql",
                "query__start",
                "8@%rbx",
            ),
            stapsdt(0x2100, 0x5000, 0, "postgresql", "query__execute__start", ""),
            stapsdt(
                0x2200,
                0x5000,
                0x8012,
                "postgresql",
                "checkpoint__done",
                "-4@Counter(%rip) 4@4+Counter(%rip)",
            ),
            stapsdt(
                0x2300,
                0x5000,
                0x8014,
                "postgresql",
                "odd",
                "8@(%rax,%rbx,8)",
            ),
        ];
        for desc in probes {
            section.extend(note(b"stapsdt", NT_STAPSDT, &desc, align));
        }
        section
    }

    #[test]
    fn notes_from_blob() {
        for align in [4, 8] {
            let notes = parse_notes(&blob(align), align as u64, true).expect("parse");
            let names: Vec<_> = notes.iter().map(|n| n.name.as_str()).collect();
            assert_eq!(
                names,
                [
                    "query__start",
                    "query__execute__start",
                    "checkpoint__done",
                    "odd"
                ]
            );
            assert_eq!(
                notes[0],
                StapsdtNote {
                    provider: "postgresql".into(),
                    name: "query__start".into(),
                    pc: 0x2000,
                    base: 0x5000,
                    semaphore: 0x8010,
                    args: "8@%rbx".into(),
                }
            );
            assert_eq!(notes[1].args, "");
        }
        assert_eq!(parse_notes(&[], 4, true), Ok(vec![]));
    }

    #[test]
    fn resolve_with_and_without_prelink() {
        let notes = parse_notes(&blob(4), 4, true).expect("parse");
        // (section address of .stapsdt.base, expected shift of pc/semaphore)
        let cases: &[(Option<u64>, u64)] = &[(Some(0x5000), 0), (None, 0), (Some(0x5040), 0x40)];
        for &(stapsdt_base, shift) in cases {
            let layout = Fake {
                stapsdt_base,
                machine: object::elf::EM_X86_64,
            };
            let probes = resolve_probes(notes.clone(), &layout).expect("resolve");
            let start = &probes[0];
            assert_eq!(start.pc_vaddr, 0x2000 + shift);
            assert_eq!(start.pc_file_offset, 0x1000 + shift);
            assert_eq!(start.semaphore_vaddr, 0x8010 + shift);
            // Via .probes, not via the PT_LOAD (which would say 0x7010).
            assert_eq!(start.semaphore_file_offset, Some(0x7810 + shift));
            assert_eq!(start.args, Ok(vec![arg(8, false, reg(RBX))]));

            let exec = &probes[1];
            assert_eq!(
                (exec.semaphore_vaddr, exec.semaphore_file_offset),
                (0, None)
            );
            assert_eq!(exec.args, Ok(vec![]));

            // sym(%rip) becomes ip + (sym - pc).
            let pc = 0x2200 + shift as i64;
            let done = &probes[2];
            assert_eq!(
                done.args,
                Ok(vec![
                    arg(4, true, deref(PT_REGS_RIP, 0x8400 - pc)),
                    arg(4, false, deref(PT_REGS_RIP, 0x8404 - pc)),
                ])
            );

            let odd = &probes[3];
            assert_eq!(odd.args_spec, "8@(%rax,%rbx,8)");
            assert!(matches!(odd.args, Err(UsdtError::IndexedOperand { .. })));
        }
    }

    #[test]
    fn resolve_refusals() {
        let note = |args: &str, pc| StapsdtNote {
            provider: "p".into(),
            name: "n".into(),
            pc,
            base: 0,
            semaphore: 0,
            args: args.into(),
        };
        let layout = Fake {
            stapsdt_base: None,
            machine: object::elf::EM_X86_64,
        };
        let cases: &[(&str, &str)] = &[
            (
                "4@Missing(%rip)",
                "argument `4@Missing(%rip)` refers to symbol `Missing`: no such symbol in .dynsym or .symtab",
            ),
            (
                "4@Counter(%rax)",
                "argument `4@Counter(%rax)` refers to symbol `Counter`: only %rip-relative symbols are supported",
            ),
        ];
        for (args, message) in cases {
            let probes = resolve_probes(vec![note(args, 0x2000)], &layout).expect("resolve");
            let err = probes[0].args.clone().expect_err(args);
            assert_eq!(err.to_string(), *message);
        }
        let err = resolve_probes(vec![note("", 0x10)], &layout).expect_err("outside");
        assert_eq!(
            err.to_string(),
            "probe p:n at 0x10 lies in no loadable segment"
        );

        let arm = Fake {
            stapsdt_base: None,
            machine: object::elf::EM_AARCH64,
        };
        let probes = resolve_probes(vec![note("8@x0", 0x2000)], &arm).expect("resolve");
        assert_eq!(
            probes[0].args,
            Err(UsdtError::UnsupportedArch { machine: 183 })
        );
    }

    #[test]
    fn malformed_blobs() {
        let good = note(b"stapsdt", NT_STAPSDT, &stapsdt(1, 2, 3, "p", "n", ""), 4);
        let short_desc = note(b"stapsdt", NT_STAPSDT, &[0; 20], 4);
        let mut no_nul = stapsdt(1, 2, 3, "p", "n", "8@%rax");
        no_nul.pop();
        let no_nul = note(b"stapsdt", NT_STAPSDT, &no_nul, 4);
        let no_name = note(b"stapsdt", NT_STAPSDT, &stapsdt(1, 2, 3, "p", "", ""), 4);
        let cases: &[(&[u8], &str)] = &[
            (&good[..5], "truncated note at byte 0 of .note.stapsdt"),
            (
                &good[..good.len() - 4],
                "truncated note at byte 0 of .note.stapsdt",
            ),
            (
                &[good.clone(), vec![1, 0, 0]].concat(),
                "truncated note at byte 52 of .note.stapsdt",
            ),
            (
                &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 3, 0, 0, 0],
                "truncated note at byte 0 of .note.stapsdt",
            ),
            (
                &short_desc,
                "malformed stapsdt note at byte 0: descriptor shorter than its three addresses",
            ),
            (
                &no_nul,
                "malformed stapsdt note at byte 0: strings are not NUL terminated",
            ),
            (
                &no_name,
                "malformed stapsdt note at byte 0: empty provider or probe name",
            ),
        ];
        for (data, message) in cases {
            let err = parse_notes(data, 4, true).expect_err(message);
            assert_eq!(err.to_string(), *message);
        }
    }

    #[test]
    fn big_endian_notes() {
        let mut desc = Vec::new();
        for v in [0x10u64, 0x20, 0x30] {
            desc.extend_from_slice(&v.to_be_bytes());
        }
        desc.extend_from_slice(b"p\0n\0\0");
        let mut section = Vec::new();
        section.extend_from_slice(&8u32.to_be_bytes());
        section.extend_from_slice(&(desc.len() as u32).to_be_bytes());
        section.extend_from_slice(&NT_STAPSDT.to_be_bytes());
        section.extend_from_slice(b"stapsdt\0");
        section.extend_from_slice(&desc);
        let notes = parse_notes(&section, 4, false).expect("parse");
        assert_eq!(
            (notes[0].pc, notes[0].base, notes[0].semaphore),
            (0x10, 0x20, 0x30)
        );
    }

    const POSTGRES: &str = "/usr/lib/postgresql/15/bin/postgres";

    fn postgres_probes() -> Option<(ElfInfo, Vec<UsdtProbe>, u64)> {
        let path = std::path::Path::new(POSTGRES);
        if !path.exists() {
            eprintln!("skipped: {POSTGRES} is not installed");
            return None;
        }
        let elf = ElfInfo::from_path(path).expect("parse postgres");
        let probes = elf.usdt_probes().expect("usdt probes");
        let len = std::fs::metadata(path).expect("stat").len();
        Some((elf, probes, len))
    }

    fn find<'a>(probes: &'a [UsdtProbe], name: &str) -> Vec<&'a UsdtProbe> {
        probes.iter().filter(|p| p.name == name).collect()
    }

    #[test]
    fn postgres_query_probes() {
        let Some((_, probes, _)) = postgres_probes() else {
            return;
        };
        let cases: &[(&str, usize, &[UsdtArg])] = &[
            ("query__start", 1, &[arg(8, false, reg(RBX))]),
            ("query__done", 1, &[arg(8, false, deref(RBP, -144))]),
            ("query__execute__start", 2, &[]),
            ("transaction__commit", 1, &[arg(4, false, deref(RAX, 60))]),
            (
                "clog__checkpoint__start",
                1,
                &[arg(4, true, ArgLocation::Const(1))],
            ),
        ];
        for &(name, locations, args) in cases {
            let found = find(&probes, name);
            assert_eq!(found.len(), locations, "{name}");
            for probe in found {
                assert_eq!(probe.provider, "postgresql");
                assert_eq!(probe.args.as_deref(), Ok(args), "{name}");
            }
        }
    }

    #[test]
    fn postgres_every_probe() {
        let Some((elf, probes, len)) = postgres_probes() else {
            return;
        };
        assert!(probes.len() > 50, "{}", probes.len());
        for p in &probes {
            assert_ne!(p.semaphore_vaddr, 0, "{}", p.name);
            let sema = p
                .semaphore_file_offset
                .unwrap_or_else(|| panic!("{}", p.name));
            assert!(sema + 2 <= len, "{}: {sema:#x}", p.name);
            assert!(p.pc_file_offset < len, "{}", p.name);
            assert_eq!(elf.vaddr_to_file_offset(p.pc_vaddr), Some(p.pc_file_offset));
            assert!(p.args.is_ok(), "{}: {:?}", p.name, p.args);
            let n = p.args_spec.split_whitespace().count();
            assert_eq!(p.args.as_ref().map(Vec::len), Ok(n), "{}", p.name);
        }
    }

    #[test]
    fn postgres_rip_relative_symbol() {
        let Some((elf, probes, _)) = postgres_probes() else {
            return;
        };
        let nbuffers = elf.symbol("NBuffers").expect("NBuffers").vaddr;
        let mut seen = 0;
        for p in &probes {
            for (spec, arg) in p
                .args_spec
                .split_whitespace()
                .zip(p.args.as_deref().unwrap_or(&[]))
            {
                if spec.ends_with("@NBuffers(%rip)") {
                    let offset = nbuffers as i64 - p.pc_vaddr as i64;
                    assert_eq!(arg.loc, deref(PT_REGS_RIP, offset), "{}", p.name);
                    seen += 1;
                }
            }
        }
        assert!(seen > 0, "no probe reads NBuffers(%rip)");
    }
}
