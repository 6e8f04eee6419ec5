/* dbflight's BPF object. aya loads one object per Ebpf instance and maps
 * are not shared across objects, so every concern (process tree, USDT
 * arguments, statements, MySQL commands, plan nodes, locks, LWLocks,
 * network, scheduler) is a header included into this one translation
 * unit; each keeps its own programs and maps. */
#include "common.bpf.h"
#include "probes/usdt_args.bpf.h"
#include "os/process.bpf.h"
#include "postgres/statements.bpf.h"
#include "mysql/commands.bpf.h"
#include "postgres/plans.bpf.h"
#include "postgres/locks.bpf.h"
#include "postgres/lock_waits.bpf.h"
#include "postgres/lwlocks.bpf.h"
#include "os/net.bpf.h"
#include "os/sched.bpf.h"
#include "postgres/wire.bpf.h"
