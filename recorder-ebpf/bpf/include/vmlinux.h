/* Hand-curated kernel types: only what dbflight's programs read.
 * preserve_access_index makes every field access a CO-RE relocation, so the
 * offsets are fixed up against the running kernel's BTF at load time. */
#ifndef DBFLIGHT_VMLINUX_H
#define DBFLIGHT_VMLINUX_H
/* Tells bpf_tracing.h that pt_regs has the kernel's field names (di, si). */
#define __VMLINUX_H__

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
typedef _Bool bool;

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
} __attribute__((preserve_access_index));

/* Sockets: enough to name a connection's two ends. */
struct in6_addr {
	union {
		__u8 u6_addr8[16];
	} in6_u;
};

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct socket {
	struct sock *sk;
} __attribute__((preserve_access_index));

/* From a file descriptor to its socket (the syscall fallback for `net`). */
struct file {
	void *private_data;
} __attribute__((preserve_access_index));

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
} __attribute__((preserve_access_index));

struct files_struct {
	struct fdtable *fdt;
} __attribute__((preserve_access_index));

struct task_struct {
	pid_t pid;
	pid_t tgid;
	struct task_struct *real_parent;
	struct mm_struct *mm;
	struct files_struct *files;
	char comm[16];
} __attribute__((preserve_access_index));

/* Classic tracepoint records of syscalls:sys_enter_* / sys_exit_*. */
struct trace_event_raw_sys_enter {
	__u64 common;
	long id;
	unsigned long args[6];
};

struct trace_event_raw_sys_exit {
	__u64 common;
	long id;
	long ret;
};

/* x86-64 layout; userspace computes register offsets against the same layout. */
struct pt_regs {
	unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
	unsigned long ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

#endif
