/* Bytes sent and received by traced processes, with both ends of the
 * connection. Strategies, tried in order by the recorder:
 *   tp_btf   sock_send_length / sock_recv_length (every socket family)
 *   fexit    tcp_sendmsg, fentry tcp_cleanup_rbuf (TCP only)
 *   kprobe   the same two functions (TCP only)
 *   syscalls sys_exit_{sendto,recvfrom,sendmsg,recvmsg}, the socket found
 *            from the descriptor saved at sys_enter */
#ifndef DBFLIGHT_NET_BPF_H
#define DBFLIGHT_NET_BPF_H

#include "common.bpf.h"

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#ifndef MSG_PEEK
#define MSG_PEEK 2
#endif

static __always_inline void fill_ends(struct net_event *ev, struct sock *sk)
{
	ev->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (ev->family == AF_INET) {
		__be32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__be32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		__builtin_memcpy(ev->local_addr, &l, 4);
		__builtin_memcpy(ev->remote_addr, &r, 4);
	} else if (ev->family == AF_INET6) {
		BPF_CORE_READ_INTO(&ev->local_addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&ev->remote_addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
	if (ev->family == AF_INET || ev->family == AF_INET6) {
		ev->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
		ev->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	}
}

static __always_inline int on_bytes(struct sock *sk, long bytes, __u8 direction)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct net_event ev = {};

	if (bytes <= 0 || !traced_state(pid_tgid >> 32))
		return 0;
	fill_header(&ev.h, EV_NET, pid_tgid);
	ev.bytes = bytes;
	ev.direction = direction;
	if (sk)
		fill_ends(&ev, sk);
	emit(&ev, sizeof(ev), DROP_NET);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(dbf_net_send_btf, struct sock *sk, int ret, int flags)
{
	return on_bytes(sk, ret, NET_SEND);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(dbf_net_recv_btf, struct sock *sk, int ret, int flags)
{
	/* A peek leaves the bytes to be received again. */
	if (flags & MSG_PEEK)
		return 0;
	return on_bytes(sk, ret, NET_RECV);
}

SEC("fexit/tcp_sendmsg")
int BPF_PROG(dbf_net_send_fexit, struct sock *sk, void *msg, __u64 size, int ret)
{
	return on_bytes(sk, ret, NET_SEND);
}

SEC("fentry/tcp_cleanup_rbuf")
int BPF_PROG(dbf_net_recv_fentry, struct sock *sk, int copied)
{
	return on_bytes(sk, copied, NET_RECV);
}

/* kprobes: tcp_sendmsg's size argument is what was asked, which is what a
 * blocking server socket sends. */
SEC("kprobe/tcp_sendmsg")
int BPF_KPROBE(dbf_net_send_kprobe, struct sock *sk, void *msg, __u64 size)
{
	return on_bytes(sk, size, NET_SEND);
}

SEC("kprobe/tcp_cleanup_rbuf")
int BPF_KPROBE(dbf_net_recv_kprobe, struct sock *sk, int copied)
{
	return on_bytes(sk, copied, NET_RECV);
}

/* Syscall fallback: the descriptor of a send/receive in flight, per thread. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
} net_fd_in_flight SEC(".maps");

static __always_inline int on_sys_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	__u32 fd = (__u32)ctx->args[0];

	if (!traced_state(pid_tgid >> 32))
		return 0;
	bpf_map_update_elem(&net_fd_in_flight, &tid, &fd, BPF_ANY);
	return 0;
}

static __always_inline struct sock *sock_of_fd(__u32 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
	struct file *f = 0;
	struct socket *so;

	if (fd >= BPF_CORE_READ(task, files, fdt, max_fds))
		return 0;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	if (!f)
		return 0;
	/* sendto/recvfrom/sendmsg/recvmsg succeed on sockets only, so the
	 * file's private data is its struct socket. */
	so = BPF_CORE_READ(f, private_data);
	return so ? BPF_CORE_READ(so, sk) : 0;
}

static __always_inline int on_sys_exit(struct trace_event_raw_sys_exit *ctx, __u8 direction)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u32 *fd = bpf_map_lookup_elem(&net_fd_in_flight, &tid);
	__u32 fdv;

	if (!fd)
		return 0;
	fdv = *fd;
	bpf_map_delete_elem(&net_fd_in_flight, &tid);
	return on_bytes(sock_of_fd(fdv), ctx->ret, direction);
}

SEC("tracepoint/syscalls/sys_enter_sendto")
int dbf_net_enter_sendto(struct trace_event_raw_sys_enter *ctx) { return on_sys_enter(ctx); }
SEC("tracepoint/syscalls/sys_exit_sendto")
int dbf_net_exit_sendto(struct trace_event_raw_sys_exit *ctx) { return on_sys_exit(ctx, NET_SEND); }
SEC("tracepoint/syscalls/sys_enter_sendmsg")
int dbf_net_enter_sendmsg(struct trace_event_raw_sys_enter *ctx) { return on_sys_enter(ctx); }
SEC("tracepoint/syscalls/sys_exit_sendmsg")
int dbf_net_exit_sendmsg(struct trace_event_raw_sys_exit *ctx) { return on_sys_exit(ctx, NET_SEND); }
SEC("tracepoint/syscalls/sys_enter_recvfrom")
int dbf_net_enter_recvfrom(struct trace_event_raw_sys_enter *ctx) { return on_sys_enter(ctx); }
SEC("tracepoint/syscalls/sys_exit_recvfrom")
int dbf_net_exit_recvfrom(struct trace_event_raw_sys_exit *ctx) { return on_sys_exit(ctx, NET_RECV); }
SEC("tracepoint/syscalls/sys_enter_recvmsg")
int dbf_net_enter_recvmsg(struct trace_event_raw_sys_enter *ctx) { return on_sys_enter(ctx); }
SEC("tracepoint/syscalls/sys_exit_recvmsg")
int dbf_net_exit_recvmsg(struct trace_event_raw_sys_exit *ctx) { return on_sys_exit(ctx, NET_RECV); }

#endif
