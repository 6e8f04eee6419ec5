//! dbflight's BPF programs as an object file, compiled from `bpf/*.c` by
//! build.rs with clang. The recorder loads it with aya.

/// The BPF object (ELF, CO-RE) holding every dbflight program and map.
pub static OBJECT: &[u8] = aya_obj_bytes();

const fn aya_obj_bytes() -> &'static [u8] {
    // include_bytes! gives no alignment guarantee; the ELF parser needs 8.
    #[repr(C, align(8))]
    struct Aligned<T: ?Sized>(T);
    static ALIGNED: &Aligned<[u8]> =
        &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/dbflight.bpf.o")));
    &ALIGNED.0
}
