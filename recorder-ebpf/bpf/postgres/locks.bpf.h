/* Heavyweight lock transitions. A uprobe on LockAcquireExtended's entry
 * remembers the tag and mode per thread (every acquisition goes through it,
 * fast-path ones included); its return sends the acquire with the result.
 * The USDT lock__wait__start/done and deadlock__found probes fire inside
 * that call, so they take the tag from the same per-thread slot.
 * LockRelease and LockReleaseAll are uprobes on their entry.
 *
 * Acquisitions nest: taking an AccessExclusiveLock assigns the transaction
 * an id, which locks the transactionid inside the outer call. So the
 * per-thread slot is a small stack. An acquisition that fails with an
 * error longjmps out without returning; the release_all of the abort that
 * follows empties the stack. */
#ifndef DBFLIGHT_LOCKS_BPF_H
#define DBFLIGHT_LOCKS_BPF_H

#include "probes/usdt_args.bpf.h"

struct pending_lock {
	__u8 tag[LOCKTAG_CAP];
	__u32 mode;
};

#define LOCK_NESTING 4
struct pending_locks {
	__u32 depth;
	struct pending_lock stack[LOCK_NESTING];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct pending_locks);
} lock_in_flight SEC(".maps");

/* The innermost acquisition in flight on this thread, if any. */
static __always_inline struct pending_lock *lock_top(struct pending_locks *ps)
{
	__u32 d;

	if (!ps || ps->depth == 0)
		return 0;
	d = ps->depth - 1;
	if (d >= LOCK_NESTING)
		return 0;
	return &ps->stack[d];
}

static __always_inline int read_tag(struct pt_regs *ctx, const struct probe_spec *spec, __u8 *tag, __u32 *mode)
{
	__s64 ptr = 0, m = 0;

	if (usdt_arg(ctx, spec, 0, &ptr) || !ptr)
		return -1;
	if (bpf_probe_read_user(tag, LOCKTAG_CAP, (void *)ptr))
		return -1;
	usdt_arg(ctx, spec, 1, &m);
	*mode = m;
	return 0;
}

SEC("uprobe")
int dbf_lock(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct probe_spec *spec;
	struct pending_locks *ps;
	struct pending_lock *p;
	struct lock_event ev = {};

	if (!traced_state(pid_tgid >> 32))
		return 0;
	spec = current_spec(ctx);
	if (!spec)
		return 0;
	switch (spec->event) {
	case ROLE_LOCK_ACQUIRE_ENTRY: {
		__u32 d;

		ps = bpf_map_lookup_elem(&lock_in_flight, &tid);
		if (!ps) {
			struct pending_locks empty = {};

			bpf_map_update_elem(&lock_in_flight, &tid, &empty, BPF_NOEXIST);
			ps = bpf_map_lookup_elem(&lock_in_flight, &tid);
			if (!ps)
				return 0;
		}
		d = ps->depth;
		if (d >= LOCK_NESTING)
			return 0; /* deeper than PostgreSQL nests: not tracked */
		if (read_tag(ctx, spec, ps->stack[d].tag, &ps->stack[d].mode) == 0)
			ps->depth = d + 1;
		return 0;
	}
	case ROLE_LOCK_ACQUIRE_RETURN:
	case ROLE_LOCK_WAIT_START:
	case ROLE_LOCK_WAIT_DONE:
	case ROLE_LOCK_DEADLOCK: {
		ps = bpf_map_lookup_elem(&lock_in_flight, &tid);
		p = lock_top(ps);
		if (p) {
			__builtin_memcpy(ev.tag, p->tag, LOCKTAG_CAP);
			ev.mode = p->mode;
			ev.has_tag = 1;
		}
		if (spec->event == ROLE_LOCK_ACQUIRE_RETURN) {
			__s64 result = 0;

			if (!p || !ps)
				return 0; /* entry not seen (attached mid-call) */
			usdt_arg(ctx, spec, 0, &result);
			ev.event = LOCK_ACQUIRE;
			ev.result = result;
			ps->depth--;
		} else {
			ev.event = spec->event == ROLE_LOCK_WAIT_START ? LOCK_WAIT_START
				 : spec->event == ROLE_LOCK_WAIT_DONE ? LOCK_WAIT_END
				 : LOCK_DEADLOCK;
		}
		break;
	}
	case ROLE_LOCK_RELEASE:
		if (read_tag(ctx, spec, ev.tag, &ev.mode))
			return 0;
		ev.has_tag = 1;
		ev.event = LOCK_RELEASE;
		break;
	case ROLE_LOCK_RELEASE_ALL: {
		__s64 method = 0;

		usdt_arg(ctx, spec, 0, &method);
		ev.mode = method;
		/* Transaction end: nothing can be in flight any more. */
		ps = bpf_map_lookup_elem(&lock_in_flight, &tid);
		if (ps)
			ps->depth = 0;
		ev.event = LOCK_RELEASE_ALL;
		break;
	}
	default:
		return 0;
	}
	fill_header(&ev.h, EV_LOCK, pid_tgid);
	emit(&ev, sizeof(ev), DROP_LOCKS);
	return 0;
}

#endif
