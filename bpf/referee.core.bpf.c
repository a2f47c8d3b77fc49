/* The referee of `tapbench run -- CMD` (bench/referee.py): the kernel's own count of a program's
 * write() calls to one descriptor, made apart from the technique under test, so that any
 * capture can be checked against it. It counts per process: the one launched, and every
 * process it forks (and they fork), each under its own tgid, with the stamps of its first and
 * last such write (at system-call entry, CLOCK_MONOTONIC).
 *
 * Built by `make` against this kernel's BTF, loaded by libbpf (methods/core_loader.py).
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/* Set by the loader before load (bench/referee.py mirrors this layout). */
struct referee_options {
    u32 watched_fd;
    u32 reserved;
};
const volatile struct referee_options options = {};

struct tally {
    u64 writes;
    u64 first_ns;     /* 0: none yet */
    u64 last_ns;
    u32 parent_tgid;  /* the process it was forked from; 0 for the launched one */
    u32 reserved;
};

#define MAX_PROCESSES 8192
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, MAX_PROCESSES);
    __type(key, u32);  /* tgid; the loader puts the launched process in before it runs */
    __type(value, struct tally);
} tallies SEC(".maps");

/* Processes of the tree the map had no room for: their writes are not counted, and the
 * referee says its count is incomplete rather than give a wrong one. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, u64);
} untracked SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_write")
int count_write(struct trace_event_raw_sys_enter *ctx)
{
    if (ctx->args[0] != options.watched_fd)
        return 0;
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    struct tally *tally = bpf_map_lookup_elem(&tallies, &tgid);
    if (!tally)
        return 0;
    u64 now = bpf_ktime_get_ns();
    __sync_fetch_and_add(&tally->writes, 1);
    __sync_val_compare_and_swap(&tally->first_ns, 0, now);
    tally->last_ns = now; /* threads on two CPUs may store out of order: off by one write's ns */
    return 0;
}

/* A process of the tree forks: its child joins the tree (a new thread is the same process). */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(follow_fork, struct task_struct *parent, struct task_struct *child)
{
    u32 parent_tgid = BPF_CORE_READ(parent, tgid), child_tgid = BPF_CORE_READ(child, tgid);
    if (parent_tgid == child_tgid || !bpf_map_lookup_elem(&tallies, &parent_tgid))
        return 0;
    struct tally fresh = {.parent_tgid = parent_tgid};
    /* A tgid already in the map is one the tree had before, reused: its counts add up there. */
    if (bpf_map_update_elem(&tallies, &child_tgid, &fresh, BPF_NOEXIST) != 0 &&
        !bpf_map_lookup_elem(&tallies, &child_tgid)) {
        u32 zero = 0;
        u64 *missed = bpf_map_lookup_elem(&untracked, &zero);
        if (missed)
            __sync_fetch_and_add(missed, 1);
    }
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
