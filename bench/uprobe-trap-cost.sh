#!/usr/bin/env bash
# What one uprobe hit costs on this machine, by the kind of instruction it
# sits on, against a plain system call: a C loop calls a function 200 000
# times with a tracefs uprobe (no BPF program: the floor of any probe) on
#   - a `push %rbp` function entry, as PostgreSQL's LockAcquireExtended,
#     LockReleaseAll and ExecInitNode begin: the kernel emulates the push,
#     so one int3 trap per hit;
#   - a 5-byte nop, which kernels with optimized uprobes (`sys_uprobe`,
#     6.18 here) rewrite into a call to a trampoline that enters by a system
#     call instead of a trap;
# and the same loop calling getppid(2). CPU time per call of the loop.
#
#   sudo bench/uprobe-trap-cost.sh [CALLS]
set -euo pipefail
N=${1:-200000}
[ "$(id -u)" = 0 ] || { echo "run as root (tracefs uprobes)" >&2; exit 1; }
command -v gcc >/dev/null || { echo "needs gcc: apt-get install gcc" >&2; exit 1; }
T=/sys/kernel/tracing
[ -d "$T/events" ] || mount -t tracefs nodev "$T"
work=$(mktemp -d)
trap 'echo 0 > $T/events/dbflight_trap/enable 2>/dev/null || true; echo "-:dbflight_trap/hit" >> $T/uprobe_events 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/loop.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
/* Begins like PostgreSQL's lock manager functions: push %rbp; mov %rsp,%rbp. */
__attribute__((naked, noinline)) void at_push(void) {
    asm volatile("push %rbp\n mov %rsp,%rbp\n pop %rbp\n ret");
}
/* A 5-byte nop, the one instruction an optimized uprobe can replace. */
__attribute__((naked, noinline)) void at_nop5(void) {
    asm volatile(".byte 0x0f,0x1f,0x44,0x00,0x00\n ret");
}
static double cpu(void) {
    struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
int main(int argc, char **argv) {
    long n = atol(argv[2]);
    double t = cpu();
    if (!strcmp(argv[1], "push")) for (long i = 0; i < n; i++) at_push();
    else if (!strcmp(argv[1], "nop5")) for (long i = 0; i < n; i++) at_nop5();
    else for (long i = 0; i < n; i++) syscall(SYS_getppid);
    printf("%.0f\n", (cpu() - t) / n * 1e9);
    return 0;
}
EOF
gcc -O2 -no-pie -fno-pie -o "$work/loop" "$work/loop.c"
# File offset of a symbol: its address less the text segment's base (non-PIE: 0x400000).
offset() { printf '0x%x' $(( 0x$(nm "$work/loop" | awk -v s="$1" '$3==s {print $1}') - 0x400000 )); }
probe() { # KIND SYMBOL: ns per call with a uprobe on SYMBOL
  echo "p:dbflight_trap/hit $work/loop:$(offset "$2")" >> $T/uprobe_events
  echo 1 > $T/events/dbflight_trap/enable
  local ns; ns=$("$work/loop" "$1" "$N")
  echo 0 > $T/events/dbflight_trap/enable
  echo "-:dbflight_trap/hit" >> $T/uprobe_events
  echo "$ns"
}
optimized=no; grep -q ' __x64_sys_uprobe$' /proc/kallsyms && optimized=yes
echo "kernel $(uname -r), optimized uprobes (sys_uprobe): $optimized, $N calls each"
printf '| what | ns per call |\n|---|---:|\n'
printf '| call, no probe | %s |\n' "$("$work/loop" push "$N")"
printf '| uprobe on `push %%rbp` (int3 trap) | %s |\n' "$(probe push at_push)"
printf '| uprobe on a 5-byte nop (optimized: call + system call) | %s |\n' "$(probe nop5 at_nop5)"
printf '| getppid(2) | %s |\n' "$("$work/loop" syscall "$N")"
