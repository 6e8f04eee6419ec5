/* Off-CPU time of traced threads, from the scheduler's context switches:
 * when a traced thread leaves a CPU its time and state are kept; when it
 * comes back one event gives the whole stretch. tp_btf first, raw_tp where
 * BTF-typed tracepoints are refused (same arguments). */
#ifndef DBFLIGHT_SCHED_BPF_H
#define DBFLIGHT_SCHED_BPF_H

#include "common.bpf.h"

struct off_cpu {
	__u64 ts;
	__u32 cpu;
	__u8 state;
};

/* Per thread (tid) while it is off CPU. LRU: threads that exit while
 * switched out are forgotten without a sweep. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct off_cpu);
} off_cpu_since SEC(".maps");

#define TASK_INTERRUPTIBLE 0x1
#define TASK_UNINTERRUPTIBLE 0x2

static __always_inline int on_switch(bool preempt, struct task_struct *prev, struct task_struct *next,
				     unsigned int prev_state)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 tid;
	struct off_cpu *since;

	if (traced_state(BPF_CORE_READ(prev, tgid))) {
		struct off_cpu o = {
			.ts = now,
			.cpu = bpf_get_smp_processor_id(),
			/* Preempted while runnable is 'R' whatever the state word says. */
			.state = preempt ? 'R'
				 : (prev_state & TASK_UNINTERRUPTIBLE) ? 'D'
				 : (prev_state & TASK_INTERRUPTIBLE) ? 'S'
				 : 'R',
		};

		tid = BPF_CORE_READ(prev, pid);
		bpf_map_update_elem(&off_cpu_since, &tid, &o, BPF_ANY);
	}
	tid = BPF_CORE_READ(next, pid);
	since = bpf_map_lookup_elem(&off_cpu_since, &tid);
	if (since) {
		struct sched_event ev = {};

		ev.h.ts = since->ts;
		ev.h.pid = BPF_CORE_READ(next, tgid);
		ev.h.tid = tid;
		ev.h.kind = EV_SCHED;
		ev.h.cpu = bpf_get_smp_processor_id();
		ev.off_cpu_ns = now - since->ts;
		ev.off_cpu = since->cpu;
		ev.state = since->state;
		bpf_map_delete_elem(&off_cpu_since, &tid);
		emit(&ev, sizeof(ev), DROP_SCHED);
	}
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(dbf_sched_btf, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	return on_switch(preempt, prev, next, prev_state);
}

SEC("raw_tp/sched_switch")
int BPF_PROG(dbf_sched_raw, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	return on_switch(preempt, prev, next, prev_state);
}

#endif
