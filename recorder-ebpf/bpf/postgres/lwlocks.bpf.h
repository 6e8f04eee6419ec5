/* LWLock transitions from PostgreSQL's USDT lwlock__* probes (guarded by
 * semaphores: attached with the kernel's reference counter). The first
 * argument is the tranche name, the second (when there is one) the mode. */
#ifndef DBFLIGHT_LWLOCKS_BPF_H
#define DBFLIGHT_LWLOCKS_BPF_H

#include "probes/usdt_args.bpf.h"

SEC("uprobe")
int dbf_lwlock(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct probe_spec *spec;
	struct lwlock_event ev = {};
	__s64 tranche = 0, mode = 255;

	if (!traced_state(pid_tgid >> 32))
		return 0;
	spec = current_spec(ctx);
	if (!spec)
		return 0;
	switch (spec->event) {
	case ROLE_LWLOCK_ACQUIRE:
		ev.event = LWLOCK_ACQUIRE;
		break;
	case ROLE_LWLOCK_WAIT_START:
		ev.event = LWLOCK_WAIT_START;
		break;
	case ROLE_LWLOCK_WAIT_DONE:
		ev.event = LWLOCK_WAIT_END;
		break;
	case ROLE_LWLOCK_RELEASE:
		ev.event = LWLOCK_RELEASE;
		break;
	default:
		return 0;
	}
	fill_header(&ev.h, EV_LWLOCK, pid_tgid);
	if (usdt_arg(ctx, spec, 0, &tranche) == 0 && tranche)
		bpf_probe_read_user_str(ev.tranche, sizeof(ev.tranche), (void *)tranche);
	usdt_arg(ctx, spec, 1, &mode);
	ev.mode = mode;
	emit(&ev, sizeof(ev), DROP_LWLOCKS);
	return 0;
}

#endif
