/* Following the target's process tree in the kernel: a child forked by a
 * traced process is traced from its first instruction; exited processes
 * leave the set. tp_btf first; raw_tp (same arguments, read through CO-RE
 * probe reads) where BTF-typed tracepoints are refused. */
#ifndef DBFLIGHT_PROCESS_BPF_H
#define DBFLIGHT_PROCESS_BPF_H

#include "common.bpf.h"
#include "postgres/wire_state.bpf.h"

static __always_inline int on_fork(struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	__u8 one = PID_TRACED;
	struct proc_event ev = {};

	/* New threads of a traced process are covered by its tgid already. */
	if (ptgid == ctgid || !traced_state(ptgid))
		return 0;
	bpf_map_update_elem(&traced_pids, &ctgid, &one, BPF_ANY);
	wire_forked(ctgid);
	fill_header(&ev.h, EV_PROC_FORK, ((__u64)ptgid << 32) | BPF_CORE_READ(parent, pid));
	ev.ppid = ptgid;
	ev.child_pid = ctgid;
	BPF_CORE_READ_STR_INTO(&ev.comm, child, comm);
	emit(&ev, sizeof(ev), DROP_PROCESSES);
	return 0;
}

static __always_inline int on_exit(struct task_struct *task)
{
	__u32 pid = BPF_CORE_READ(task, pid);
	__u32 tgid = BPF_CORE_READ(task, tgid);
	struct proc_event ev = {};

	/* Only the group leader's exit ends the process. */
	if (pid != tgid || !traced_state(tgid))
		return 0;
	bpf_map_delete_elem(&traced_pids, &tgid);
	if (wire_on) {
		/* Its last statement's end, if it waits (wire_fold_ready). */
		struct wire_state *st = bpf_map_lookup_elem(&wire_states, &tgid);

		if (st)
			wire_send_waiting_ready(st, ((__u64)tgid << 32) | pid);
		bpf_map_delete_elem(&wire_states, &tgid);
	}
	fill_header(&ev.h, EV_PROC_EXIT, ((__u64)tgid << 32) | pid);
	ev.ppid = BPF_CORE_READ(task, real_parent, tgid);
	BPF_CORE_READ_STR_INTO(&ev.comm, task, comm);
	emit(&ev, sizeof(ev), DROP_PROCESSES);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(dbf_fork_btf, struct task_struct *parent, struct task_struct *child)
{
	return on_fork(parent, child);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(dbf_exit_btf, struct task_struct *task)
{
	return on_exit(task);
}

SEC("raw_tp/sched_process_fork")
int BPF_PROG(dbf_fork_raw, struct task_struct *parent, struct task_struct *child)
{
	return on_fork(parent, child);
}

SEC("raw_tp/sched_process_exit")
int BPF_PROG(dbf_exit_raw, struct task_struct *task)
{
	return on_exit(task);
}

#endif
