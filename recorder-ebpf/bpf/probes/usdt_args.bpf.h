/* Fetching USDT arguments from pt_regs by their note's argument spec
 * (8@%rbx, 4@4(%r12), -4@$5, 8@-144(%rbp)). The design is libbpf's
 * usdt.bpf.h; aya cannot load that file (SEC("usdt"), __kconfig), so specs
 * live in a map indexed by the attach cookie the recorder sets per probe. */
#ifndef DBFLIGHT_USDT_ARGS_BPF_H
#define DBFLIGHT_USDT_ARGS_BPF_H

#include "common.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_PROBE_SPECS);
	__type(key, __u32);
	__type(value, struct probe_spec);
} probe_specs SEC(".maps");

static __always_inline struct probe_spec *current_spec(struct pt_regs *ctx)
{
	__u32 id = (__u32)bpf_get_attach_cookie(ctx);
	return bpf_map_lookup_elem(&probe_specs, &id);
}

static __always_inline int usdt_arg(struct pt_regs *ctx, const struct probe_spec *spec, __u32 n, __s64 *res)
{
	const struct usdt_arg_spec *arg;
	unsigned long val;
	int err;

	if (n >= USDT_MAX_ARGS || n >= spec->nargs)
		return -2; /* -ENOENT */
	arg = &spec->args[n];
	switch (arg->arg_type) {
	case USDT_ARG_CONST:
		val = arg->val_off;
		break;
	case USDT_ARG_REG:
		err = bpf_probe_read_kernel(&val, sizeof(val), (void *)ctx + arg->reg_off);
		if (err)
			return err;
		break;
	case USDT_ARG_REG_DEREF:
		err = bpf_probe_read_kernel(&val, sizeof(val), (void *)ctx + arg->reg_off);
		if (err)
			return err;
		err = bpf_probe_read_user(&val, sizeof(val), (void *)val + arg->val_off);
		if (err)
			return err;
		break;
	case USDT_ARG_ABS_DEREF:
		err = bpf_probe_read_user(&val, sizeof(val), (void *)arg->val_off);
		if (err)
			return err;
		break;
	case USDT_ARG_ABS_DEREF_FIELD:
		err = bpf_probe_read_user(&val, sizeof(val), (void *)arg->val_off);
		if (err)
			return err;
		if (!val)
			return -2;
		err = bpf_probe_read_user(&val, sizeof(val), (void *)val + arg->reg_off);
		if (err)
			return err;
		break;
	default:
		return -22; /* -EINVAL */
	}
	/* Cast the value down to the argument's size, sign- or zero-extending. */
	val <<= arg->arg_bitshift;
	if (arg->arg_signed)
		val = ((long)val) >> arg->arg_bitshift;
	else
		val = val >> arg->arg_bitshift;
	*res = val;
	return 0;
}

#endif
