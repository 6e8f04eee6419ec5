/* Lock waits with the sessions blocking them (locks=waits, the default):
 * probes that run only when a backend must wait, never on the many
 * acquisitions that are granted at once.
 *
 * - ProcSleep's entry (JoinWaitQueue's on PostgreSQL 18) holds the lock's
 *   partition lock, so the lock's lists cannot change under us: the
 *   LOCALLOCK gives the tag, the mode and the shared LOCK, whose procLocks
 *   list has a PROCLOCK per session holding or wanting it (holdMask, the
 *   PGPROC) and whose waitProcs queue has the PGPROCs already waiting
 *   (waitLockMode). Each holder and queued session is sent; userspace
 *   decides which conflict (hard: held, soft: queued ahead), as
 *   pg_blocking_pids() does. A fast-path holder needs no walk of its own: a
 *   request for a conflicting mode moves fast-path locks into the main
 *   table before it waits (FastPathTransferRelationLocks).
 * - ProcSleep's return ends the wait (granted, or an error: a deadlock's
 *   victim); DeadLockCheck's return marks a deadlock (DS_HARD_DEADLOCK);
 *   AbortCurrentTransaction's entry ends a wait an error left (cancel,
 *   lock_timeout: they longjmp out of ProcSleep).
 *
 * Each sends a struct lock_event (wait_start, wait_end, deadlock) carrying
 * the waited tag, kept per thread from the entry; the entry also sends the
 * struct lock_wait_event with the holders and the queue. */
#ifndef DBFLIGHT_LOCK_WAITS_BPF_H
#define DBFLIGHT_LOCK_WAITS_BPF_H

#include "probes/usdt_args.bpf.h"

#define DS_HARD_DEADLOCK 3
/* procLocks and waitProcs entries looked at: a lock with more sessions
 * than this is reported with `more` set. */
#define LOCK_WALK_MAX 64

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lock_wait_layout);
} lock_wait_layouts SEC(".maps");

struct waited_lock {
	__u8 tag[LOCKTAG_CAP];
	__u32 mode;
};

/* The lock each thread is waiting for, from ProcSleep's entry to the end
 * of its wait. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct waited_lock);
} lock_waiting SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lock_wait_event);
} lock_wait_scratch SEC(".maps");

static __always_inline __u64 read_ptr(__u64 addr)
{
	__u64 v = 0;

	bpf_probe_read_user(&v, sizeof(v), (void *)addr);
	return v;
}

static __always_inline __u32 read_u32(__u64 addr)
{
	__u32 v = 0;

	bpf_probe_read_user(&v, sizeof(v), (void *)addr);
	return v;
}

/* One walk of a circular list of the lock (procLocks or waitProcs), a
 * bpf_loop callback: the verifier checks its body once, not once per
 * element (an unrolled walk of both lists passed its million-instruction
 * limit). */
struct lock_walk {
	struct lock_wait_layout l;
	__u64 head;
	__u64 node;
	__u32 self;
	__u32 queue; /* walking waitProcs, not procLocks */
	__u32 n;     /* sessions kept in the event so far */
	__u32 more;  /* sessions beyond its capacity */
};

static long lock_walk_step(__u64 i, void *arg)
{
	struct lock_walk *w = arg;
	__u32 zero = 0, pid, leader_pid = 0, hold = 0, wait_mode = 0;
	struct lock_wait_event *ev;
	struct lock_blocker *b;
	__u64 proc, leader;

	if (!w->node || w->node == w->head)
		return 1;
	if (w->queue) {
		proc = w->node - w->l.proc_links;
		wait_mode = read_u32(proc + w->l.proc_wait_lock_mode);
		leader = read_ptr(proc + w->l.proc_lock_group_leader);
	} else {
		__u64 proclock = w->node - w->l.proclock_lock_link;

		hold = read_u32(proclock + w->l.proclock_hold_mask);
		proc = read_ptr(proclock + w->l.proclock_my_proc);
		leader = read_ptr(proclock + w->l.proclock_group_leader);
	}
	pid = proc ? read_u32(proc + w->l.proc_pid) : 0;
	w->node = read_ptr(w->node + w->l.link_next);
	/* A PROCLOCK with nothing held is a waiter's: the queue tells of it. */
	if (!pid || pid == w->self || (!w->queue && !hold))
		return 0;
	if (leader && leader != proc)
		leader_pid = read_u32(leader + w->l.proc_pid);
	ev = bpf_map_lookup_elem(&lock_wait_scratch, &zero);
	if (!ev)
		return 1;
	if (w->n >= LOCK_BLOCKERS_CAP) {
		w->more++;
		return 0;
	}
	b = &ev->blockers[w->n & (LOCK_BLOCKERS_CAP - 1)];
	b->pid = pid;
	b->leader_pid = leader_pid;
	b->hold_mask = hold;
	b->wait_mode = wait_mode;
	w->n++;
	return 0;
}

/* Walks the list whose head is at `head` in the LOCK. */
static __always_inline void lock_walk(struct lock_walk *w, __u64 head)
{
	w->head = head;
	w->node = read_ptr(head + w->l.link_next);
	bpf_loop(LOCK_WALK_MAX, lock_walk_step, w, 0);
}

/* ProcSleep (or JoinWaitQueue) entry: the wait begins. */
static __always_inline int lock_sleep(struct pt_regs *ctx, const struct probe_spec *spec, __u64 pid_tgid)
{
	__u32 zero = 0, tid = (__u32)pid_tgid;
	struct lock_wait_layout *l = bpf_map_lookup_elem(&lock_wait_layouts, &zero);
	struct lock_wait_event *ev = bpf_map_lookup_elem(&lock_wait_scratch, &zero);
	struct lock_event start = {};
	struct waited_lock w = {};
	__s64 locallock = 0, dont_wait = 0;
	__u64 lock;

	if (!l || !ev || !l->valid)
		return 0;
	if (usdt_arg(ctx, spec, 0, &locallock) || !locallock)
		return 0;
	/* NOWAIT and SKIP LOCKED reach it on 17+ and return at once. */
	if (spec->nargs > 1 && usdt_arg(ctx, spec, 1, &dont_wait) == 0 && (dont_wait & 0xff))
		return 0;
	if (bpf_probe_read_user(w.tag, LOCKTAG_CAP, (void *)locallock))
		return 0;
	w.mode = read_u32(locallock + l->locallock_mode);
	bpf_map_update_elem(&lock_waiting, &tid, &w, BPF_ANY);

	__builtin_memcpy(start.tag, w.tag, LOCKTAG_CAP);
	start.mode = w.mode;
	start.has_tag = 1;
	start.event = LOCK_WAIT_START;
	fill_header(&start.h, EV_LOCK, pid_tgid);
	emit(&start, sizeof(start), DROP_LOCKS);

	__builtin_memcpy(ev->tag, w.tag, LOCKTAG_CAP);
	ev->mode = w.mode;
	ev->nholders = 0;
	ev->nwaiters = 0;
	ev->more = 0;
	lock = read_ptr(locallock + l->locallock_lock);
	if (lock) {
		struct lock_walk w = {};

		w.l = *l;
		w.self = pid_tgid >> 32;
		lock_walk(&w, lock + l->lock_proc_locks);
		ev->nholders = w.n;
		w.queue = 1;
		lock_walk(&w, lock + l->lock_wait_procs);
		ev->nwaiters = w.n - ev->nholders;
		ev->more = w.more;
	}
	/* Same time as the wait_start: the two are joined on (pid, ts). */
	ev->h = start.h;
	ev->h.kind = EV_LOCK_WAIT;
	emit(ev, sizeof(*ev), DROP_LOCKS);
	return 0;
}

/* The end of a wait (`result`), or a deadlock found while waiting. */
static __always_inline int lock_wait_event(__u64 pid_tgid, __u8 event, __u8 result, int forget)
{
	__u32 tid = (__u32)pid_tgid;
	struct waited_lock *w = bpf_map_lookup_elem(&lock_waiting, &tid);
	struct lock_event ev = {};

	if (!w)
		return 0; /* not waiting (or the wait began before the recording) */
	__builtin_memcpy(ev.tag, w->tag, LOCKTAG_CAP);
	ev.mode = w->mode;
	ev.has_tag = 1;
	ev.event = event;
	ev.result = result;
	if (forget)
		bpf_map_delete_elem(&lock_waiting, &tid);
	fill_header(&ev.h, EV_LOCK, pid_tgid);
	emit(&ev, sizeof(ev), DROP_LOCKS);
	return 0;
}

SEC("uprobe")
int dbf_lock_wait(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct probe_spec *spec;
	__s64 ret = 0;

	if (!traced_state(pid_tgid >> 32))
		return 0;
	spec = current_spec(ctx);
	if (!spec)
		return 0;
	switch (spec->event) {
	case ROLE_LOCK_SLEEP:
		return lock_sleep(ctx, spec, pid_tgid);
	case ROLE_LOCK_SLEEP_RETURN:
		/* ProcWaitStatus (PROC_WAIT_STATUS_OK = 0) or, up to 13, STATUS_OK = 0. */
		usdt_arg(ctx, spec, 0, &ret);
		return lock_wait_event(pid_tgid, LOCK_WAIT_END,
				       ret == 0 ? LOCK_WAIT_GRANTED : LOCK_WAIT_FAILED, 1);
	case ROLE_LOCK_DEADLOCK_CHECK:
		usdt_arg(ctx, spec, 0, &ret);
		if (ret != DS_HARD_DEADLOCK)
			return 0;
		return lock_wait_event(pid_tgid, LOCK_DEADLOCK, 0, 0);
	case ROLE_LOCK_WAIT_ABORT:
		return lock_wait_event(pid_tgid, LOCK_WAIT_END, LOCK_WAIT_CANCELLED, 1);
	}
	return 0;
}

#endif
