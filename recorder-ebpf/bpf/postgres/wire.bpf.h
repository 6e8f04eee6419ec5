/* Statements from the PostgreSQL wire protocol (the `wire` strategy of
 * `queries`): no uprobe, so no trap per statement. The backend's own
 * socket calls already pass the sock_recv_length and sock_send_length
 * tracepoints; at those, the syscall's user buffer (from the task's saved
 * user registers) holds the frontend's messages or the server's reply.
 *
 * Received bytes are walked message by message (type byte, 4-byte
 * big-endian length), with per-thread state carrying a message across
 * recv calls. Query, Parse, Bind and Execute messages go to userspace
 * with their leading bytes; everything else is skipped by its length.
 * A send whose last message is ReadyForQuery ends the statement(s)
 * received before it; when statements are all that is recorded, its time
 * waits in the thread's state and goes with the next message's event
 * (or at exit, or is read from the map when the recording stops).
 *
 * A connection is followed from its startup packet when its backend was
 * forked while recording; one that existed before is taken to be between
 * messages at its next receive (an idle backend is), and if that proves
 * wrong, from its next ReadyForQuery. An SSL/GSS
 * encrypted connection is unreadable here and is reported once (WIRE_TLS)
 * so userspace can say so. */
#ifndef DBFLIGHT_WIRE_BPF_H
#define DBFLIGHT_WIRE_BPF_H

#include "common.bpf.h"
#include "postgres/statements.bpf.h"
#include "postgres/wire_state.bpf.h"

#ifndef MSG_PEEK
#define MSG_PEEK 2
#endif

/* Bytes before a send's end searched for an ErrorResponse. */
#define WIRE_ERROR_TAIL_CAP 2048

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct wire_event);
} wire_scratch SEC(".maps");

/* The user buffer of the socket call in progress: recv/send's, or the first
 * iovec's of recvmsg/sendmsg. */
static __always_inline __u64 wire_user_buffer(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	/* A BTF pointer: plain loads, no helper call. */
	unsigned long nr = regs->orig_ax, si = regs->si;
	switch (nr) {
	case 0:  /* read */
	case 1:  /* write */
	case 44: /* sendto */
	case 45: /* recvfrom */
		return si;
	case 46: /* sendmsg */
	case 47: /* recvmsg */ {
		struct iovec_user {
			__u64 base;
			__u64 len;
		} iov;
		__u64 iov_ptr = 0;

		/* struct msghdr: name, namelen (+pad), iov at 16 */
		if (bpf_probe_read_user(&iov_ptr, sizeof(iov_ptr), (void *)(si + 16)) || !iov_ptr)
			return 0;
		if (bpf_probe_read_user(&iov, sizeof(iov), (void *)iov_ptr))
			return 0;
		return iov.base;
	}
	}
	return 0;
}

static __always_inline struct wire_event *wire_event_start(__u16 what, __u64 pid_tgid)
{
	__u32 zero = 0;
	struct wire_event *ev = bpf_map_lookup_elem(&wire_scratch, &zero);

	if (!ev)
		return 0;
	fill_header(&ev->h, EV_WIRE, pid_tgid);
	ev->h.flags = what;
	ev->body_len = 0;
	ev->data_len = 0;
	ev->msg_type = 0;
	ev->ready_status = 0;
	ev->ready_ts = 0;
	return ev;
}

static __always_inline void wire_emit(struct wire_event *ev)
{
	__u64 len = offsetof(struct wire_event, data) + (ev->data_len & (QUERY_TEXT_CAP - 1));

	if (len > sizeof(*ev))
		len = sizeof(*ev);
	if (bpf_ringbuf_output(&events, ev, len, ringbuf_flags))
		count_drop(DROP_QUERIES);
}

/* Copies `n` bytes at `src` into the event's data and sends it. */
static __always_inline void wire_send_data(struct wire_event *ev, __u64 src, __u32 n)
{
	__u64 sz = n;

	if (sz >= QUERY_TEXT_CAP)
		sz = QUERY_TEXT_CAP - 1;
	/* Keep clang from bounding one register and passing another. */
	barrier_var(sz);
	sz &= QUERY_TEXT_CAP - 1;
	ev->data_len = 0;
	if (sz && bpf_probe_read_user(ev->data, sz, (void *)src) == 0)
		ev->data_len = sz;
	wire_emit(ev);
}

static __always_inline void wire_lost(struct wire_state *st, __u64 pid_tgid, __u8 why)
{
	struct wire_event *ev;

	st->phase = WIRE_UNSYNCED;
	st->skip = 0;
	st->want = 0;
	st->hdr_have = 0;
	ev = wire_event_start(WIRE_LOST, pid_tgid);
	if (ev) {
		ev->msg_type = why;
		wire_emit(ev);
	}
}

/* How many leading bytes of a message body userspace needs. */
static __always_inline __u32 wire_copy_len(__u8 type, __u32 body)
{
	__u32 cap;

	switch (type) {
	case 'Q':
		cap = max_query_len + 1; /* one more: the text was cut or not */
		break;
	case 'P':
		cap = max_query_len + 65; /* statement name (< NAMEDATALEN) first */
		break;
	case 'B':
		cap = 130; /* portal and statement names */
		break;
	case 'E':
	case 'C':
		cap = 66; /* portal name (Execute), what to close (Close) */
		break;
	default:
		return 0;
	}
	if (cap >= QUERY_TEXT_CAP)
		cap = QUERY_TEXT_CAP - 1;
	return body < cap ? body : cap;
}

static __always_inline int wire_known_type(__u8 t)
{
	switch (t) {
	case 'Q': case 'P': case 'B': case 'E': case 'S': case 'D': case 'C':
	case 'H': case 'F': case 'X': case 'd': case 'c': case 'f': case 'p':
		return 1;
	}
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(dbf_wire_recv, struct sock *sk, int ret, int flags)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct wire_state fresh = { .phase = WIRE_TYPED };
	struct wire_state *st;
	struct wire_event *ev;
	__u64 buf;
	__u32 off = 0, len;

	/* Most calls are not a traced backend's: cheapest tests first. Only
	 * traced threads have a state, so one lookup answers both. */
	if (ret <= 0 || (flags & MSG_PEEK))
		return 0;
	st = bpf_map_lookup_elem(&wire_states, &tid);
	if (!st) {
		if (!traced_state(pid_tgid >> 32))
			return 0;
		/* A connection that predates the recording. Its backend is most
		 * likely idle between messages, so take this call as starting one;
		 * if it does not look like one, wait for ReadyForQuery. */
		bpf_map_update_elem(&wire_states, &tid, &fresh, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&wire_states, &tid);
		if (!st)
			return 0;
	}
	if (st->phase == WIRE_UNSYNCED || st->phase == WIRE_OFF)
		return 0;
	buf = wire_user_buffer();
	if (!buf)
		return 0;
	len = ret;

	if (st->phase == WIRE_NEW || st->phase == WIRE_SSL_ASKED) {
		__u32 pkt[2];
		__u32 plen, code;

		if (len < 8 || bpf_probe_read_user(pkt, sizeof(pkt), (void *)buf)) {
			wire_lost(st, pid_tgid, 1);
			return 0;
		}
		plen = bpf_ntohl(pkt[0]);
		code = bpf_ntohl(pkt[1]);
		if (code == PG_SSL_REQUEST || code == PG_GSSENC_REQUEST) {
			st->phase = WIRE_SSL_ASKED;
			return 0;
		}
		if (code == PG_CANCEL_REQUEST || plen < 8 || plen > 10000) {
			st->phase = WIRE_OFF;
			return 0;
		}
		st->phase = WIRE_TYPED;
		st->skip = plen - 8;
		st->want = 0;
		off = 8;
	}

	for (int i = 0; i < WIRE_MAX_MSGS; i++) {
		if (off >= len)
			return 0;
		if (st->skip) {
			__u32 avail = len - off;
			__u32 n = st->skip < avail ? st->skip : avail;

			if (st->want) {
				__u32 c = st->want < n ? st->want : n;

				ev = wire_event_start(WIRE_CONT, pid_tgid);
				if (ev)
					wire_send_data(ev, buf + off, c);
				st->want -= c;
			}
			st->skip -= n;
			off += n;
			continue;
		}
		/* A header, maybe split across two recv calls. */
		__u32 need = 5 - (st->hdr_have & 7);
		__u32 avail = len - off;
		__u32 n = need < avail ? need : avail;
		__u32 at = st->hdr_have & 7;

		__u8 tmp[8] = {};

		__u64 sz = n;

		if (at > 4 || n > 5 || n == 0)
			return 0;
		barrier_var(sz);
		if (sz > 5)
			return 0;
		if (bpf_probe_read_user(tmp, sz, (void *)(buf + off)))
			return 0;
		for (int k = 0; k < 5; k++) {
			__u32 dst = at + k;

			if (k >= n || dst >= 5)
				break;
			st->hdr[dst & 7] = tmp[k & 7];
		}
		off += n;
		st->hdr_have = at + n;
		if (st->hdr_have < 5)
			return 0;
		st->hdr_have = 0;

		__u8 type = st->hdr[0];
		__u32 mlen = ((__u32)st->hdr[1] << 24) | ((__u32)st->hdr[2] << 16) |
			     ((__u32)st->hdr[3] << 8) | st->hdr[4];

		/* A TLS record (handshake, alert, application data; version 3.x):
		 * a connection encrypted before the recording began. */
		if ((type == 0x16 || type == 0x15 || type == 0x17) && st->hdr[1] == 3) {
			st->phase = WIRE_OFF;
			ev = wire_event_start(WIRE_TLS, pid_tgid);
			if (ev)
				wire_emit(ev);
			return 0;
		}
		if (!wire_known_type(type) || mlen < 4 || mlen > 0x40000000) {
			wire_lost(st, pid_tgid, 2);
			return 0;
		}
		__u32 body = mlen - 4;
		__u32 copy = wire_copy_len(type, body);

		st->skip = body;
		st->want = 0;
		if (!copy)
			continue;
		if (type == 'Q' || type == 'E')
			send_title_once(&st->titled, pid_tgid);
		ev = wire_event_start(WIRE_MSG, pid_tgid);
		if (!ev)
			continue;
		ev->msg_type = type;
		ev->body_len = body;
		/* The last statement's end travels with this message. */
		if (st->ready_ts) {
			ev->ready_ts = st->ready_ts;
			ev->ready_status = st->ready_status;
			st->ready_ts = 0;
		}
		avail = len - off;
		n = copy < avail ? copy : avail;
		wire_send_data(ev, buf + off, n);
		st->want = copy - n;
		st->skip -= n;
		off += n;
	}
	/* More messages in one call than looked at: out of step. */
	if (off < len)
		wire_lost(st, pid_tgid, 3);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(dbf_wire_send, struct sock *sk, int ret, int flags)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct wire_state *st;
	struct wire_event *ev;
	__u8 tail[8] = {};
	__u64 buf;

	/* Only traced threads have a state. */
	if (ret <= 0)
		return 0;
	st = bpf_map_lookup_elem(&wire_states, &tid);
	if (!st || st->phase == WIRE_OFF)
		return 0;
	buf = wire_user_buffer();
	if (!buf)
		return 0;
	if (st->phase == WIRE_SSL_ASKED) {
		/* The answer to SSLRequest: 'S' (or 'G' for GSS) encrypts the rest. */
		if (ret == 1 && bpf_probe_read_user(tail, 1, (void *)buf) == 0) {
			if (tail[0] == 'N') {
				st->phase = WIRE_NEW;
			} else {
				st->phase = WIRE_OFF;
				ev = wire_event_start(WIRE_TLS, pid_tgid);
				if (ev)
					wire_emit(ev);
			}
		}
		return 0;
	}
	/* ReadyForQuery is 'Z', length 5, the transaction status. */
	if (ret >= 8) {
		if (bpf_probe_read_user(tail, 8, (void *)(buf + ret - 8)))
			return 0;
	} else if (ret >= 6) {
		tail[0] = 1; /* fewer than 8 bytes: no NULs before them */
		if (bpf_probe_read_user(tail + 2, 6, (void *)(buf + ret - 6)))
			return 0;
	} else if (ret >= 2) {
		tail[0] = 1;
		if (bpf_probe_read_user(tail + 6, 2, (void *)(buf + ret - 2)))
			return 0;
	} else {
		return 0;
	}
	int ready = tail[2] == 'Z' && !tail[3] && !tail[4] && !tail[5] && tail[6] == 5 &&
		    (tail[7] == 'I' || tail[7] == 'T' || tail[7] == 'E');
	__u32 end = ready ? ret - 6 : ret;
	int error_tail = end >= 7 && (ready ? !tail[0] && !tail[1] : !tail[6] && !tail[7]);

	/* A ReadyForQuery still waiting (no message came since) ends its
	 * statement before anything this send says. */
	if (ready || error_tail)
		wire_send_waiting_ready(st, pid_tgid);

	/* An ErrorResponse (its fields end in two NULs) may end what is sent
	 * before ReadyForQuery: its tail goes to userspace, which finds the
	 * message ending there (a notice or ParameterStatus can end so too). */
	if (error_tail) {
		__u32 n = end < WIRE_ERROR_TAIL_CAP ? end : WIRE_ERROR_TAIL_CAP;

		ev = wire_event_start(WIRE_ERROR_TAIL, pid_tgid);
		if (ev)
			wire_send_data(ev, buf + end - n, n);
	}
	if (!ready)
		return 0;
	if (st->phase == WIRE_UNSYNCED) {
		st->phase = WIRE_TYPED;
		st->skip = 0;
		st->want = 0;
		st->hdr_have = 0;
	}
	if (wire_fold_ready) {
		st->ready_ts = bpf_ktime_get_ns();
		st->ready_status = tail[7];
		return 0;
	}
	ev = wire_event_start(WIRE_READY, pid_tgid);
	if (!ev)
		return 0;
	ev->msg_type = tail[7];
	wire_emit(ev);
	return 0;
}

#endif
