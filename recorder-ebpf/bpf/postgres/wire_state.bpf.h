/* The `wire` strategy's per-thread protocol state (wire.bpf.h), apart
 * so that the fork handler (process.bpf.h) can start a new backend's. */
#ifndef DBFLIGHT_WIRE_STATE_BPF_H
#define DBFLIGHT_WIRE_STATE_BPF_H

#include "common.bpf.h"

/* Set by the recorder when this strategy is on: forks then start the
 * child's protocol state. */
const volatile __u8 wire_on = 0;

#define WIRE_NEW 0       /* a startup packet (untyped) comes first */
#define WIRE_TYPED 1     /* in step with the message stream */
#define WIRE_UNSYNCED 2  /* boundaries unknown until the next ReadyForQuery */
#define WIRE_SSL_ASKED 3 /* SSLRequest/GSSENCRequest sent: a one-byte answer comes */
#define WIRE_OFF 4       /* encrypted: nothing to read */

#define PG_SSL_REQUEST 80877103
#define PG_GSSENC_REQUEST 80877104
#define PG_CANCEL_REQUEST 80877102

/* Messages looked at per recv call; more (a long pipeline) loses step. */
#define WIRE_MAX_MSGS 24

/* Set by the recorder when nothing else it records is assigned to
 * statements (no net, sched, locks, lwlocks, plans): a ReadyForQuery then
 * waits in the thread's state and travels with the next message's event,
 * one ring event per statement instead of two. Events of other kinds need
 * the statement's end in order, so with them each ReadyForQuery is sent. */
const volatile __u8 wire_fold_ready = 0;

struct wire_state {
	__u32 skip;    /* bytes of the current message's body still to come */
	__u32 want;    /* of those, bytes still to copy to userspace */
	__u8 phase;
	__u8 hdr_have; /* bytes of a header split across recv calls */
	__u8 titled;   /* PID_TITLED once the process title was sent */
	__u8 hdr[8];   /* 5 used; 8 so that an index & 7 is in bounds */
	__u8 ready_status; /* of the ReadyForQuery waiting in ready_ts */
	__u64 ready_ts;    /* a ReadyForQuery not sent yet (wire_fold_ready), 0 if none */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32); /* tid */
	__type(value, struct wire_state);
} wire_states SEC(".maps");

/* Sends the ReadyForQuery waiting in `st` as an event of its own (the
 * thread exits, or sends another before its next message). */
static __always_inline void wire_send_waiting_ready(struct wire_state *st, __u64 pid_tgid)
{
	struct wire_head ev = {};

	if (!st->ready_ts)
		return;
	fill_header(&ev.h, EV_WIRE, pid_tgid);
	ev.h.ts = st->ready_ts;
	ev.h.flags = WIRE_READY;
	ev.msg_type = st->ready_status;
	st->ready_ts = 0;
	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), ringbuf_flags))
		count_drop(DROP_QUERIES);
}

/* Called at fork: the child's first bytes are a startup packet. */
static __always_inline void wire_forked(__u32 child)
{
	struct wire_state st = { .phase = WIRE_NEW };

	if (wire_on)
		bpf_map_update_elem(&wire_states, &child, &st, BPF_ANY);
}

#endif
