/* MySQL and MariaDB: one program serves every probe of a mysqld/mariadbd
 * binary; the probe spec selected by the attach cookie says which one
 * fired and where its arguments live (per server version, chosen by
 * recorder/src/mysql/probes.rs). The server is one process with a thread
 * per connection, so events are keyed by thread in userspace.
 *
 * - dispatch_command entry: the command, with the statement text (COM_QUERY,
 *   COM_STMT_PREPARE; the packet is not NUL-terminated, so exactly its
 *   length is read, bounded by max_query_len) or the statement id
 *   (COM_STMT_EXECUTE, CLOSE, RESET);
 * - dispatch_command return: the command is done;
 * - my_message_sql entry: an error (or, by its flags, a warning or note);
 * - Prepared_statement's constructor: its THD's next statement id is taken;
 * - THD's constructor: a new session object, whose ids start at 1 (a THD
 *   outlives connections: cached threads reuse theirs).
 *
 * At dispatch_command's entry the session is read from the THD too (its
 * connection id, user, host, ip and current database, where the
 * mysql_thd_layout of this build says they are) and sent as
 * EV_MYSQL_SESSION before the command, only when it differs from what was
 * last sent for the thread: once per connection, and again after USE or
 * COM_CHANGE_USER. With no layout (an unknown build) nothing is read. */
#ifndef DBFLIGHT_MYSQL_BPF_H
#define DBFLIGHT_MYSQL_BPF_H

#include "probes/usdt_args.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mysql_thd_layout);
} mysql_thd_layouts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mysql_session_event);
} mysql_session_scratch SEC(".maps");

/* The session last sent per thread. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct mysql_session);
} mysql_last_session SEC(".maps");

#define MYSQL_SESSION_WORDS (sizeof(struct mysql_session) / 8)

static __always_inline void mysql_read_str(char *dst, __u32 cap, __u64 base, __u32 off)
{
	__u64 p = 0;

	if (!bpf_probe_read_user(&p, sizeof(p), (void *)(base + off)) && p)
		bpf_probe_read_user_str(dst, cap, (void *)p);
}

static __always_inline void mysql_session_event(__u64 thd, __u64 pid_tgid)
{
	__u32 zero = 0, tid = (__u32)pid_tgid;
	struct mysql_thd_layout *l = bpf_map_lookup_elem(&mysql_thd_layouts, &zero);
	struct mysql_session_event *ev;
	struct mysql_session *last;
	__u64 *now, *was, sctx = 0;
	int i;

	if (!l || !l->valid || !thd)
		return;
	ev = bpf_map_lookup_elem(&mysql_session_scratch, &zero);
	if (!ev)
		return;
	now = (__u64 *)&ev->s;
	for (i = 0; i < MYSQL_SESSION_WORDS; i++)
		now[i] = 0;
	ev->s.thd = thd;
	if (l->thread_id_size == 4) {
		__u32 id = 0;

		bpf_probe_read_user(&id, 4, (void *)(thd + l->thread_id));
		ev->s.thread_id = id;
	} else {
		bpf_probe_read_user(&ev->s.thread_id, 8, (void *)(thd + l->thread_id));
	}
	mysql_read_str(ev->s.db, MYSQL_DB_CAP, thd, l->db);
	if (!bpf_probe_read_user(&sctx, sizeof(sctx), (void *)(thd + l->sctx)) && sctx) {
		mysql_read_str(ev->s.user, MYSQL_USER_CAP, sctx, l->sctx_user);
		mysql_read_str(ev->s.host, MYSQL_HOST_CAP, sctx, l->sctx_host);
		mysql_read_str(ev->s.ip, MYSQL_IP_CAP, sctx, l->sctx_ip);
	}
	last = bpf_map_lookup_elem(&mysql_last_session, &tid);
	if (last) {
		was = (__u64 *)last;
		for (i = 0; i < MYSQL_SESSION_WORDS; i++)
			if (now[i] != was[i])
				break;
		if (i == MYSQL_SESSION_WORDS)
			return;
	}
	fill_header(&ev->h, EV_MYSQL_SESSION, pid_tgid);
	/* Remembered only once sent: a lost event is sent again next time. */
	if (bpf_ringbuf_output(&events, ev, sizeof(*ev), ringbuf_flags))
		count_drop(DROP_QUERIES);
	else
		bpf_map_update_elem(&mysql_last_session, &tid, &ev->s, BPF_ANY);
}

static __always_inline int mysql_text_event(struct pt_regs *ctx, const struct probe_spec *spec,
					    __u64 pid_tgid, __u16 kind)
{
	__u32 zero = 0;
	struct query_start_event *ev = bpf_map_lookup_elem(&query_scratch, &zero);
	__s64 a0 = 0, ptr = 0, len = 0;
	__u32 n = 0;

	if (!ev)
		return 0;
	fill_header(&ev->h, kind, pid_tgid);
	ev->protocol = PROTO_MYSQL;
	ev->truncated = 0;
	ev->text_len = 0;
	usdt_arg(ctx, spec, 0, &a0);
	if (kind == EV_MYSQL_STMT_NEW || kind == EV_MYSQL_THD_NEW) {
		ev->aux = a0;
	} else if (kind == EV_MYSQL_ERROR) {
		__s64 flags = 0;

		usdt_arg(ctx, spec, 2, &flags);
		ev->aux = (__u32)a0 | ((__u64)(__u32)flags << 32);
		usdt_arg(ctx, spec, 1, &ptr);
		if (ptr) {
			long r = bpf_probe_read_user_str(ev->text, 512, (void *)ptr);
			if (r > 0)
				ev->text_len = r - 1;
		}
	} else {
		__s64 thd = 0;

		usdt_arg(ctx, spec, 3, &thd);
		ev->aux = thd;
		ev->h.flags = (__u16)a0;
		switch ((__u32)a0) {
		case MYSQL_COM_QUERY:
		case MYSQL_COM_STMT_PREPARE:
			if (usdt_arg(ctx, spec, 1, &ptr) || !ptr || usdt_arg(ctx, spec, 2, &len))
				break;
			n = (__u32)len;
			if (n > max_query_len) {
				n = max_query_len;
				ev->truncated = 1;
			}
			n &= QUERY_TEXT_CAP - 1;
			if (n && bpf_probe_read_user(ev->text, n, (void *)ptr) == 0)
				ev->text_len = n;
			break;
		case MYSQL_COM_STMT_EXECUTE:
		case MYSQL_COM_STMT_CLOSE:
		case MYSQL_COM_STMT_RESET: {
			__u32 id32 = 0;

			if (usdt_arg(ctx, spec, 1, &ptr))
				break;
			if (spec->protocol == MYSQL_STMT_ID_IS_ARG)
				id32 = (__u32)ptr;
			else if (!ptr || bpf_probe_read_user(&id32, 4, (void *)ptr))
				break;
			__builtin_memcpy(ev->text, &id32, 4);
			ev->text_len = 4;
			break;
		}
		}
	}
	__u64 size = offsetof(struct query_start_event, text) + (ev->text_len & (QUERY_TEXT_CAP - 1));
	if (size > sizeof(*ev))
		size = sizeof(*ev);
	if (bpf_ringbuf_output(&events, ev, size, ringbuf_flags))
		count_drop(DROP_QUERIES);
	return 0;
}

SEC("uprobe")
int dbf_mysql(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct probe_spec *spec;
	struct event_header h;

	if (!traced_state(pid_tgid >> 32))
		return 0;
	spec = current_spec(ctx);
	if (!spec)
		return 0;
	switch (spec->event) {
	case ROLE_MYSQL_DISPATCH: {
		__s64 thd = 0;

		if (!usdt_arg(ctx, spec, 3, &thd))
			mysql_session_event(thd, pid_tgid);
		return mysql_text_event(ctx, spec, pid_tgid, EV_MYSQL_COMMAND);
	}
	case ROLE_MYSQL_ERROR:
		return mysql_text_event(ctx, spec, pid_tgid, EV_MYSQL_ERROR);
	case ROLE_MYSQL_STMT_NEW:
		return mysql_text_event(ctx, spec, pid_tgid, EV_MYSQL_STMT_NEW);
	case ROLE_MYSQL_THD_NEW:
		return mysql_text_event(ctx, spec, pid_tgid, EV_MYSQL_THD_NEW);
	case ROLE_MYSQL_DISPATCH_RETURN:
		fill_header(&h, EV_MYSQL_DONE, pid_tgid);
		emit(&h, sizeof(h), DROP_QUERIES);
		return 0;
	}
	return 0;
}

#endif
