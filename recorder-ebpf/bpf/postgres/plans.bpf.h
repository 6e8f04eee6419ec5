/* Plan nodes: a uprobe on ExecInitNode(Plan *node, ...) copies the head of
 * each node as the executor initialises it, with the addresses of its
 * children beyond lefttree/righttree (Append's list, SubqueryScan's
 * subplan, ...), so userspace can name every node's parent. Field offsets
 * differ between majors: userspace decodes the raw head. */
#ifndef DBFLIGHT_PLANS_BPF_H
#define DBFLIGHT_PLANS_BPF_H

#include "probes/usdt_args.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct plan_layout);
} plan_layouts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct plan_event);
} plan_scratch SEC(".maps");

static __always_inline void list_children(struct plan_event *ev, const struct plan_layout *l, __u64 list)
{
	if (!list)
		return;
	if (l->list_kind == LIST_ARRAY) {
		__s32 len = 0;
		__u64 elems = 0;

		bpf_probe_read_user(&len, sizeof(len), (void *)list + l->list_length);
		bpf_probe_read_user(&elems, sizeof(elems), (void *)list + l->list_elements);
		if (len <= 0 || !elems)
			return;
		if (len > PLAN_CHILDREN_CAP)
			len = PLAN_CHILDREN_CAP;
		/* ListCell is one pointer-sized union in the array layout. */
		if (bpf_probe_read_user(ev->children, (len & (PLAN_CHILDREN_CAP - 1 | PLAN_CHILDREN_CAP)) * 8,
					(void *)elems) == 0)
			ev->nchildren = len;
	} else if (l->list_kind == LIST_LINKED) {
		__u64 cell = 0;

		bpf_probe_read_user(&cell, sizeof(cell), (void *)list + l->list_elements);
		for (int i = 0; i < PLAN_CHILDREN_CAP && cell; i++) {
			if (bpf_probe_read_user(&ev->children[i], 8, (void *)cell + l->cell_data))
				break;
			ev->nchildren = i + 1;
			if (bpf_probe_read_user(&cell, sizeof(cell), (void *)cell + l->cell_next))
				break;
		}
	}
}

SEC("uprobe")
int dbf_plan_node(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 zero = 0;
	struct probe_spec *spec;
	struct plan_layout *l;
	struct plan_event *ev;
	__s64 node = 0;
	__u32 tag;

	if (!traced_state(pid_tgid >> 32))
		return 0;
	spec = current_spec(ctx);
	l = bpf_map_lookup_elem(&plan_layouts, &zero);
	ev = bpf_map_lookup_elem(&plan_scratch, &zero);
	if (!spec || !l || !ev || usdt_arg(ctx, spec, 0, &node) || !node)
		return 0;
	fill_header(&ev->h, EV_PLAN_NODE, pid_tgid);
	ev->node = node;
	ev->nchildren = 0;
	if (bpf_probe_read_user(ev->head, PLAN_HEAD_CAP, (void *)node))
		return 0;
	tag = *(__u32 *)ev->head;
	for (int i = 0; i < PLAN_LIST_CHILD_TYPES && i < l->nlist; i++) {
		if (l->list_tag[i] == tag) {
			__u64 list = 0;

			bpf_probe_read_user(&list, sizeof(list), (void *)node + l->list_off[i]);
			list_children(ev, l, list);
		}
	}
	for (int i = 0; i < PLAN_EXTRA_CHILD_TYPES && i < l->nextra; i++) {
		if (l->extra_tag[i] == tag && ev->nchildren < PLAN_CHILDREN_CAP) {
			__u32 n = ev->nchildren & (PLAN_CHILDREN_CAP - 1);

			if (bpf_probe_read_user(&ev->children[n], 8, (void *)node + l->extra_off[i]) == 0)
				ev->nchildren = n + 1;
		}
	}
	if (bpf_ringbuf_output(&events, ev, sizeof(*ev), ringbuf_flags))
		count_drop(DROP_PLANS);
	return 0;
}

#endif
