/* Events sent from BPF to userspace through the ring buffer.
 * The recorder mirrors every struct here as #[repr(C)] with size and offset
 * assertions, in the folder of the kind that reads it (the header in
 * recorder/src/ring.rs, struct lock_event in recorder/src/postgres/locks/,
 * struct net_event in recorder/src/os/net.rs, ...): change both together. */
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
	EV_PLAN_NODE = 9,  /* struct plan_event */
	EV_LOCK = 10,      /* struct lock_event */
	EV_LWLOCK = 11,    /* struct lwlock_event */
	EV_NET = 12,       /* struct net_event */
	EV_SCHED = 13,     /* struct sched_event */
	/* MySQL/MariaDB (mysql.bpf.h); each of layout query_start_event, `aux`
	 * the THD (the server's session object: its address names it).
	 * EV_MYSQL_COMMAND: dispatch_command entry, `h.flags` = the
	 * enum_server_command; the text is the statement for COM_QUERY and
	 * COM_STMT_PREPARE, the 4-byte statement id (little endian) for
	 * COM_STMT_EXECUTE/CLOSE/RESET. */
	EV_MYSQL_COMMAND = 14,
	EV_MYSQL_DONE = 15,     /* dispatch_command returned: a bare header */
	/* The server raised an error (my_message_sql): `aux` = error code |
	 * flags << 32, text = the message. */
	EV_MYSQL_ERROR = 16,
	EV_MYSQL_STMT_NEW = 17, /* a Prepared_statement was created for THD `aux`: it takes the next id */
	EV_MYSQL_THD_NEW = 18,  /* THD `aux` was constructed: its statement ids start at 1 */
	/* The session a dispatch_command runs for (struct mysql_session_event),
	 * sent before its EV_MYSQL_COMMAND when it differs from the last one
	 * sent for the thread: a new connection, COM_CHANGE_USER, USE. */
	EV_MYSQL_SESSION = 19,
};

/* The `wire` strategy (wire.bpf.h): struct wire_event, `h.flags` an enum
 * wire_what. */
#define EV_WIRE 28
/* A backend must wait for a heavyweight lock (postgres/lock_waits.bpf.h):
 * struct lock_wait_event, with the sessions holding it and those queued. */
#define EV_LOCK_WAIT 29
enum wire_what {
	WIRE_MSG = 0,   /* a frontend message: msg_type, body_len, its first data_len bytes */
	WIRE_CONT = 1,  /* more bytes of the last WIRE_MSG's body (it spanned recv calls) */
	WIRE_READY = 2, /* the server sent ReadyForQuery: msg_type = its transaction status */
	WIRE_LOST = 3,  /* out of step with the message stream (msg_type says why)
			 * until the next ReadyForQuery */
	WIRE_TLS = 4,   /* the connection turned to SSL/GSS encryption: unreadable */
	WIRE_ERROR_TAIL = 5, /* the last bytes of a send that may end in an ErrorResponse */
};

/* What a lock or LWLock probe means (probe_spec.event; never sent as a
 * kind). Lock probes on entry of LockAcquireExtended only remember the tag;
 * its return sends the acquire with the result. */
enum probe_role {
	ROLE_LOCK_ACQUIRE_ENTRY = 20,
	ROLE_LOCK_ACQUIRE_RETURN = 21,
	ROLE_LOCK_WAIT_START = 22,
	ROLE_LOCK_WAIT_DONE = 23,
	ROLE_LOCK_DEADLOCK = 24,
	ROLE_LOCK_RELEASE = 25,
	ROLE_LOCK_RELEASE_ALL = 26,
	ROLE_PLAN_NODE = 30,
	/* Lock waits (locks=waits): ProcSleep's (JoinWaitQueue's on 18)
	 * entry, arg 0 the LOCALLOCK, arg 1 (17+) dontWait; ProcSleep's
	 * return (arg 0 its ProcWaitStatus); DeadLockCheck's return (arg 0
	 * its DeadLockState); AbortCurrentTransaction's entry (a wait left by
	 * an error: cancel, lock_timeout). */
	ROLE_LOCK_SLEEP = 60,
	ROLE_LOCK_SLEEP_RETURN = 61,
	ROLE_LOCK_DEADLOCK_CHECK = 62,
	ROLE_LOCK_WAIT_ABORT = 63,
	ROLE_LWLOCK_ACQUIRE = 40,
	ROLE_LWLOCK_WAIT_START = 41,
	ROLE_LWLOCK_WAIT_DONE = 42,
	ROLE_LWLOCK_RELEASE = 43,
	/* dispatch_command entry: args 0 command, 1 text pointer, 2 text
	 * length, 3 THD; probe_spec.protocol says where the statement id of
	 * the COM_STMT_* commands is (enum mysql_stmt_id) */
	ROLE_MYSQL_DISPATCH = 50,
	ROLE_MYSQL_DISPATCH_RETURN = 51,
	ROLE_MYSQL_ERROR = 52, /* args 0 error code, 1 message pointer, 2 flags */
	ROLE_MYSQL_STMT_NEW = 53, /* arg 0 the THD */
	ROLE_MYSQL_THD_NEW = 54,  /* arg 0 the THD */
};

enum mysql_stmt_id {
	MYSQL_STMT_ID_IN_PACKET = 0, /* MariaDB: the first 4 bytes arg 1 points to */
	MYSQL_STMT_ID_IS_ARG = 1,    /* MySQL 5.7+: arg 1's value (COM_DATA.com_stmt_execute.stmt_id) */
};

/* enum_server_command values the BPF side looks at. */
#define MYSQL_COM_QUERY 3
#define MYSQL_COM_STMT_PREPARE 22
#define MYSQL_COM_STMT_EXECUTE 23
#define MYSQL_COM_STMT_SEND_LONG_DATA 24
#define MYSQL_COM_STMT_CLOSE 25
#define MYSQL_COM_STMT_RESET 26

/* lock_event.event */
enum lock_transition {
	LOCK_ACQUIRE = 0,
	LOCK_WAIT_START = 1,
	LOCK_WAIT_END = 2,
	LOCK_RELEASE = 3,
	LOCK_RELEASE_ALL = 4,
	LOCK_DEADLOCK = 5,
};

/* lwlock_event.event */
enum lwlock_transition {
	LWLOCK_ACQUIRE = 0,
	LWLOCK_WAIT_START = 1,
	LWLOCK_WAIT_END = 2,
	LWLOCK_RELEASE = 3,
};

enum net_direction {
	NET_SEND = 0,
	NET_RECV = 1,
};

#define TITLE_CAP 128

/* Index of the per-kind drop counters (one per table of the trace). */
enum drop_kind {
	DROP_QUERIES = 0,
	DROP_PROCESSES = 1,
	DROP_PLANS = 2,
	DROP_LOCKS = 3,
	DROP_LWLOCKS = 4,
	DROP_NET = 5,
	DROP_SCHED = 6,
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

/* The fixed part of a wire event; ready_ts, when not 0, is a ReadyForQuery
 * the thread sent before this message (status ready_status), folded into
 * it to save a ring event per statement (wire_fold_ready). */
#define WIRE_EVENT_HEAD \
	struct event_header h; \
	__u32 body_len; \
	__u32 data_len; \
	__u8 msg_type; \
	__u8 ready_status; \
	__u8 pad[6]; \
	__u64 ready_ts;

struct wire_event {
	WIRE_EVENT_HEAD
	char data[QUERY_TEXT_CAP];
};

/* A wire event without data: small enough for the stack. */
struct wire_head {
	WIRE_EVENT_HEAD
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

/* Bytes of a Plan node copied raw: userspace decodes the fields with the
 * server major's layout (recorder/src/postgres/layout). */
#define PLAN_HEAD_CAP 96
#define PLAN_CHILDREN_CAP 16
#define LOCKTAG_CAP 16
#define TRANCHE_CAP 32

struct plan_event {
	struct event_header h;
	__u64 node;      /* the Plan's address: children name their parent by it */
	__u32 nchildren; /* children beyond lefttree/righttree (Append, SubqueryScan, ...) */
	__u32 pad;
	__u64 children[PLAN_CHILDREN_CAP];
	__u8 head[PLAN_HEAD_CAP];
};

struct lock_event {
	struct event_header h;
	__u8 tag[LOCKTAG_CAP]; /* the LOCKTAG, raw */
	__u32 mode;            /* LOCKMODE; release_all: the lock method */
	__u8 event;            /* enum lock_transition */
	__u8 result;           /* LockAcquireResult, acquire only */
	__u8 has_tag;
	__u8 pad;
};

/* lock_event.result of a LOCK_WAIT_END in locks=waits */
enum lock_wait_result {
	LOCK_WAIT_GRANTED = 1,   /* as LockAcquireResult's LOCKACQUIRE_OK */
	LOCK_WAIT_FAILED = 4,    /* ProcSleep returned an error: a deadlock's victim */
	LOCK_WAIT_CANCELLED = 5, /* left by an error: cancel, lock_timeout */
};

/* A session in a lock wait's account: a holder (hold_mask, the modes it
 * holds) or one queued for the lock (wait_mode); leader_pid is its lock
 * group's leader (parallel query), 0 outside a group. */
#define LOCK_BLOCKERS_CAP 16
struct lock_blocker {
	__u32 pid;
	__u32 leader_pid;
	__u32 hold_mask;
	__u32 wait_mode;
};

/* EV_LOCK_WAIT: a backend is about to sleep on a lock. Holders come first
 * (nholders), then the sessions queued for it (nwaiters), in queue order;
 * `more` counts those beyond the capacity, not sent. */
struct lock_wait_event {
	struct event_header h;
	__u8 tag[LOCKTAG_CAP];
	__u32 mode;
	__u16 nholders;
	__u16 nwaiters;
	__u32 more;
	__u32 pad;
	struct lock_blocker blockers[LOCK_BLOCKERS_CAP];
};

/* Where the wait hooks find a waiter's lock, its holders and its queue
 * (set by userspace from the server major's layout). `valid` 0: unknown. */
struct lock_wait_layout {
	__u32 valid;
	__u16 locallock_mode;
	__u16 locallock_lock;
	__u16 lock_proc_locks;
	__u16 lock_wait_procs;
	__u16 proclock_my_proc;
	__u16 proclock_group_leader;
	__u16 proclock_hold_mask;
	__u16 proclock_lock_link;
	__u16 proc_links;
	__u16 proc_pid;
	__u16 proc_wait_lock_mode;
	__u16 proc_lock_group_leader;
	__u16 link_next;
	__u16 pad;
};

struct lwlock_event {
	struct event_header h;
	__u8 event; /* enum lwlock_transition */
	__u8 mode;  /* LWLockMode; 255 when the probe does not say */
	__u8 pad[6];
	char tranche[TRANCHE_CAP];
};

struct net_event {
	struct event_header h;
	__s64 bytes;
	__u16 family; /* AF_INET, AF_INET6, AF_UNIX, ... */
	__u16 local_port;
	__u16 remote_port;
	__u8 direction; /* enum net_direction */
	__u8 pad;
	__u8 local_addr[16]; /* IPv4 in the first 4 bytes */
	__u8 remote_addr[16];
};

struct sched_event {
	struct event_header h; /* ts: when the thread left the CPU */
	__u64 off_cpu_ns;
	__u32 off_cpu; /* the CPU it left */
	__u8 state;   /* 'R' preempted, 'S' sleeping, 'D' uninterruptible */
	__u8 pad[3];
};

/* Where a MariaDB THD keeps its session, for the server's build (set by
 * userspace before attach: recorder/src/mysql/sessions.rs derives it from
 * the binary's accessor functions). `valid` 0: unknown, nothing is read. */
struct mysql_thd_layout {
	__u32 valid;
	__u32 thread_id;      /* THD::thread_id (the connection id) */
	__u32 thread_id_size; /* 4 or 8 bytes */
	__u32 db;             /* THD::db.str (NUL-terminated) */
	__u32 sctx;           /* THD::security_ctx (Security_context *) */
	__u32 sctx_user;      /* Security_context::user (char *) */
	__u32 sctx_host;      /* Security_context::host (char *) */
	__u32 sctx_ip;        /* Security_context::ip (char *) */
};

#define MYSQL_USER_CAP 128
#define MYSQL_HOST_CAP 64
#define MYSQL_IP_CAP 48
#define MYSQL_DB_CAP 192

struct mysql_session {
	__u64 thd;
	__u64 thread_id;
	char user[MYSQL_USER_CAP];
	char host[MYSQL_HOST_CAP];
	char ip[MYSQL_IP_CAP];
	char db[MYSQL_DB_CAP];
};

struct mysql_session_event {
	struct event_header h;
	struct mysql_session s;
};

/* Where ExecInitNode finds a plan node's children beyond lefttree and
 * righttree, for the server's major (set by userspace before attach). */
#define PLAN_LIST_CHILD_TYPES 8
#define PLAN_EXTRA_CHILD_TYPES 4
enum list_layout {
	LIST_ARRAY = 1,  /* PostgreSQL 13+: length and an elements array */
	LIST_LINKED = 2, /* 12 and older: head cell, next pointers */
};
struct plan_layout {
	__u32 list_kind; /* enum list_layout */
	__u16 list_length;
	__u16 list_elements; /* array: elements; linked: head */
	__u16 cell_data;
	__u16 cell_next;
	__u32 nlist;
	__u32 list_tag[PLAN_LIST_CHILD_TYPES];
	__u16 list_off[PLAN_LIST_CHILD_TYPES];
	__u32 nextra;
	__u32 extra_tag[PLAN_EXTRA_CHILD_TYPES];
	__u16 extra_off[PLAN_EXTRA_CHILD_TYPES];
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
