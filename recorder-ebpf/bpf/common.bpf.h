/* Maps and helpers shared by every dbflight program: the traced pid set,
 * the event ring buffer, per-kind drop counters and configuration. */
#ifndef DBFLIGHT_COMMON_BPF_H
#define DBFLIGHT_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "events.h"

char LICENSE[] SEC("license") = "GPL";

/* Configuration, set by the recorder before load (frozen .rodata: the
 * verifier sees them as constants). */
const volatile __u32 max_query_len = 4096;
/* Ring buffer wakeups: 0 lets userspace poll on a timer instead of being
 * woken per event, which keeps the recorder's CPU cost off the hot path. */
const volatile __u64 ringbuf_flags = BPF_RB_NO_WAKEUP;

/* Processes (tgid) being traced: the postmaster and its descendants.
 * The value is a state, so one lookup on the hot path answers both "is it
 * traced?" and "was its title sent?" (statements.bpf.h). */
#define PID_TRACED 1
#define PID_TITLED 2
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} traced_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 32 * 1024 * 1024);
} events SEC(".maps");

/* Events lost because the ring buffer was full, per enum drop_kind. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_KINDS);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

static __always_inline __u8 *traced_state(__u32 tgid)
{
	return bpf_map_lookup_elem(&traced_pids, &tgid);
}

static __always_inline void count_drop(__u32 kind)
{
	__u64 *n = bpf_map_lookup_elem(&drops, &kind);
	if (n)
		(*n)++;
}

static __always_inline void fill_header(struct event_header *h, __u16 kind, __u64 pid_tgid)
{
	h->ts = bpf_ktime_get_ns();
	h->pid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->kind = kind;
	h->flags = 0;
	h->cpu = bpf_get_smp_processor_id();
}

/* Sends a small fixed-size event; counts a drop when the ring is full. */
static __always_inline void emit(void *ev, __u64 size, __u32 drop_kind)
{
	if (bpf_ringbuf_output(&events, ev, size, ringbuf_flags))
		count_drop(drop_kind);
}

/* Scratch space for one text event (struct query_start_event: PostgreSQL
 * statements, MySQL commands): too large for the 512-byte stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct query_start_event);
} query_scratch SEC(".maps");

#endif
