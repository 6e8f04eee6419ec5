/* dbflight's BPF object. aya loads one object per Ebpf instance and maps
 * are not shared across objects, so every concern (process tree, USDT
 * arguments, statements, MySQL commands, plan nodes, locks, LWLocks,
 * network, scheduler) is a header included into this one translation
 * unit; each keeps its own programs and maps. */
#include "common.bpf.h"
#include "usdt_args.bpf.h"
#include "process.bpf.h"
#include "statements.bpf.h"
#include "mysql.bpf.h"
#include "plans.bpf.h"
#include "locks.bpf.h"
#include "lwlocks.bpf.h"
#include "net.bpf.h"
#include "sched.bpf.h"
#include "wire.bpf.h"
