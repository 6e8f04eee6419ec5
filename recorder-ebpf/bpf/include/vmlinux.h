/* Hand-curated kernel types: only what dbflight's programs read.
 * preserve_access_index makes every field access a CO-RE relocation, so the
 * offsets are fixed up against the running kernel's BTF at load time. */
#ifndef DBFLIGHT_VMLINUX_H
#define DBFLIGHT_VMLINUX_H

#include <linux/types.h>
#include <linux/bpf.h>

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s16 s16;
typedef __s32 s32;
typedef __s64 s64;
typedef int pid_t;

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
} __attribute__((preserve_access_index));

struct task_struct {
	pid_t pid;
	pid_t tgid;
	struct task_struct *real_parent;
	struct mm_struct *mm;
	char comm[16];
} __attribute__((preserve_access_index));

/* x86-64 layout; userspace computes register offsets against the same layout. */
struct pt_regs {
	unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
	unsigned long ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

#endif
