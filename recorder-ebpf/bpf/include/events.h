/* Events sent from BPF to userspace through the ring buffer.
 * recorder/src/events.rs mirrors every struct here as #[repr(C)] with size
 * and offset assertions: change both together. */
#ifndef DBFLIGHT_EVENTS_H
#define DBFLIGHT_EVENTS_H

/* Capacity of a statement's text in one event; --max-query-len is capped below it. */
#define QUERY_TEXT_CAP 16384
#define USDT_MAX_ARGS 4
#define MAX_PROBE_SPECS 256

enum event_kind {
	EV_QUERY_START = 1,
	EV_QUERY_DONE = 2,
	EV_TXN_ABORT = 3,
	EV_PROC_FORK = 4,
	EV_PROC_EXIT = 5,
	EV_ERROR_REPORT = 6, /* the server reports a message (EmitErrorReport); layout of query_start_event */
	EV_PROC_TITLE = 7,
	/* A whole statement from one probe at its end (the `light` strategy):
	 * layout of query_start_event, `aux` = its start from the server. */
	EV_QUERY_COMPLETE = 8,
};

#define TITLE_CAP 128

/* Index of the per-kind drop counters (one per table of the trace). */
enum drop_kind {
	DROP_QUERIES = 0,
	DROP_PROCESSES = 1,
	DROP_KINDS = 8,
};

enum query_protocol {
	PROTO_SIMPLE = 0,
	PROTO_EXTENDED = 1,
	PROTO_MYSQL = 2,
	PROTO_UNKNOWN = 3,
	/* Derive from argument 1, PostgreSQL's CommandDest of the portal's
	 * receiver: DestRemote (simple protocol) or DestRemoteExecute (extended). */
	PROTO_FROM_PG_DEST = 4,
};

#define PG_DEST_REMOTE 2
#define PG_DEST_REMOTE_EXECUTE 3
#define PG_DEST_REMOTE_SIMPLE 4

struct event_header {
	__u64 ts;   /* CLOCK_MONOTONIC ns */
	__u32 pid;  /* tgid */
	__u32 tid;
	__u16 kind; /* enum event_kind */
	__u16 flags;
	__u32 cpu;
};

struct query_start_event {
	struct event_header h;
	/* EV_QUERY_COMPLETE, EV_ERROR_REPORT: the statement's start as the
	 * server recorded it (PostgreSQL: us since 2000-01-01), 0 if unknown. */
	__u64 aux;
	__u32 text_len; /* bytes of text actually present */
	__u8 protocol;  /* enum query_protocol */
	__u8 truncated;
	__u8 pad[2];
	char text[QUERY_TEXT_CAP];
};

struct proc_event {
	struct event_header h;
	__u32 ppid;
	__u32 child_pid; /* fork only */
	char comm[16];
};

/* A process's title (argv area, which PostgreSQL rewrites), sent at its
 * first statement: a backend may exit before userspace could read /proc. */
struct title_event {
	struct event_header h;
	char title[TITLE_CAP];
};

/* USDT argument locations, after libbpf's usdt.bpf.h. */
enum usdt_arg_type {
	USDT_ARG_CONST = 0,
	USDT_ARG_REG = 1,
	USDT_ARG_REG_DEREF = 2,
	USDT_ARG_ABS_DEREF = 3, /* *(u64 *)val_off: a global such as debug_query_string */
	/* *(u64 *)(*(u64 *)val_off + reg_off): a field of the struct a global
	 * points to, such as MyBEEntry->st_activity_start_timestamp */
	USDT_ARG_ABS_DEREF_FIELD = 4,
};

struct usdt_arg_spec {
	__u64 val_off;
	__u32 arg_type;
	__s16 reg_off;
	__u8 arg_signed;
	__s8 arg_bitshift;
};

/* What one attached probe means; selected by the attach cookie. */
struct probe_spec {
	__u32 event;    /* enum event_kind */
	__u32 protocol; /* for EV_QUERY_START */
	__u32 nargs;
	__u32 pad;
	struct usdt_arg_spec args[USDT_MAX_ARGS];
};

#endif
