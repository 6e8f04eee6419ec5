/* Statements: one program serves every statement probe (a uprobe on
 * PortalRun's entry, USDT query__execute__done and transaction__abort, a
 * uprobe on EmitErrorReport, ...); the probe spec selected by the attach
 * cookie says which event it is and where its arguments live. Start and
 * error-report events carry the text; the others are bare headers;
 * userspace pairs them per pid. Each probe hit is a trap: the hot path
 * is two per statement, and the program does as little as it can. With
 * the `wire` strategy these probes are its fallback for encrypted
 * connections (statement_gate). */
#ifndef DBFLIGHT_STATEMENTS_BPF_H
#define DBFLIGHT_STATEMENTS_BPF_H

#include "probes/usdt_args.bpf.h"
#include "postgres/wire_state.bpf.h"

/* Set by the recorder (index 0, nonzero) when these probes serve only the
 * connections the `wire` strategy cannot read: attached to the whole
 * server at the first encrypted connection, they must stay silent for the
 * backends the wire already records. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} statement_gate SEC(".maps");

/* Whether this thread's statements are the wire's, not the probes'. */
static __always_inline int wire_has_it(__u32 tid)
{
	__u32 zero = 0;
	__u32 *gate = bpf_map_lookup_elem(&statement_gate, &zero);
	struct wire_state *ws;

	/* A load-time constant: without the wire the verifier drops the rest. */
	if (!wire_on || !gate || !*gate)
		return 0;
	ws = bpf_map_lookup_elem(&wire_states, &tid);
	return !ws || ws->phase != WIRE_OFF;
}

/* Sends the process title at a backend's first statement. `state` is its
 * traced_pids value; a backend is one thread, so no other CPU races on it. */
static __always_inline void send_title_once(__u8 *state, __u64 pid_tgid)
{
	struct title_event ev;
	struct task_struct *task;
	unsigned long arg_start;

	if (*state == PID_TITLED)
		return;
	*state = PID_TITLED;
	task = (struct task_struct *)bpf_get_current_task();
	arg_start = BPF_CORE_READ(task, mm, arg_start);
	fill_header(&ev.h, EV_PROC_TITLE, pid_tgid);
	if (bpf_probe_read_user_str(ev.title, sizeof(ev.title), (void *)arg_start) < 0)
		ev.title[0] = 0;
	emit(&ev, sizeof(ev), DROP_PROCESSES);
}

/* Sends an event of the query_start_event layout (statement start, error
 * report, complete statement) with the text its spec's first argument
 * points to. */
static __always_inline int query_start(struct pt_regs *ctx, const struct probe_spec *spec, __u64 pid_tgid)
{
	__u32 zero = 0;
	struct query_start_event *ev = bpf_map_lookup_elem(&query_scratch, &zero);
	__s64 text_ptr = 0;
	long n;
	/* Read one byte past the limit to learn whether the text was cut. */
	__u32 want = max_query_len + 2;

	if (!ev)
		return 0;
	fill_header(&ev->h, spec->event, pid_tgid);
	ev->aux = 0;
	ev->protocol = spec->protocol;
	if (spec->event != EV_QUERY_START) {
		__s64 start = 0;

		if (usdt_arg(ctx, spec, 1, &start) == 0)
			ev->aux = start;
	} else {
		__s64 received = 0;

		if (spec->protocol == PROTO_FROM_PG_DEST) {
			__s64 dest = 0;

			usdt_arg(ctx, spec, 1, &dest);
			ev->protocol = dest == PG_DEST_REMOTE_EXECUTE ? PROTO_EXTENDED
				     : (dest == PG_DEST_REMOTE || dest == PG_DEST_REMOTE_SIMPLE) ? PROTO_SIMPLE
				     : PROTO_UNKNOWN;
		}
		/* When the server began on the message (before parsing and
		 * planning, which execution start does not include). */
		if (usdt_arg(ctx, spec, 2, &received) == 0)
			ev->aux = received;
	}
	ev->truncated = 0;
	ev->text_len = 0;
	if (usdt_arg(ctx, spec, 0, &text_ptr) == 0 && text_ptr) {
		if (want > QUERY_TEXT_CAP)
			want = QUERY_TEXT_CAP;
		n = bpf_probe_read_user_str(ev->text, want, (void *)text_ptr);
		if (n > 0) {
			n -= 1; /* the NUL */
			if (n > max_query_len) {
				n = max_query_len;
				ev->truncated = 1;
			}
			ev->text_len = n;
		}
	}
	__u64 len = offsetof(struct query_start_event, text) + ev->text_len;
	if (len > sizeof(*ev))
		len = sizeof(*ev);
	if (bpf_ringbuf_output(&events, ev, len, ringbuf_flags))
		count_drop(DROP_QUERIES);
	return 0;
}

SEC("uprobe")
int dbf_statement(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u8 *state = traced_state(pid_tgid >> 32);
	struct probe_spec *spec;
	struct event_header h;

	if (!state || wire_has_it((__u32)pid_tgid))
		return 0;
	spec = current_spec(ctx);
	if (!spec)
		return 0;
	switch (spec->event) {
	case EV_QUERY_COMPLETE: {
		/* Nested executions (EXECUTE, FETCH) end inside their outer
		 * one: PortalRun has restored ActivePortal to the outer portal
		 * by now, NULL at top level. Only top-level ones are rows. */
		__s64 outer = 0;

		if (usdt_arg(ctx, spec, 2, &outer) == 0 && outer)
			return 0;
	}
		/* fallthrough */
	case EV_QUERY_START:
	case EV_ERROR_REPORT:
		send_title_once(state, pid_tgid);
		return query_start(ctx, spec, pid_tgid);
	case EV_QUERY_DONE:
	case EV_TXN_ABORT:
		fill_header(&h, spec->event, pid_tgid);
		emit(&h, sizeof(h), DROP_QUERIES);
		return 0;
	}
	return 0;
}

#endif
