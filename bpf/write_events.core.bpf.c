/* tapbench eBPF observer, the CO-RE build: the same hook as write_events.bpf.c (what runs per
 * write is write_events.h, shared), compiled once by `make` against a vmlinux.h made from this
 * kernel's BTF, and relocated by libbpf where it is loaded: no compiler, no kernel headers at
 * run time (methods/core_loader.py).
 *
 * What bcc's build gets as #defines, this one gets as read-only globals that the loader sets
 * before load (`options`); the kernel's verifier sees them as constants, so a branch they rule
 * out is not even loaded. The loader loads only the programs the variant needs: raw_sys_enter
 * or tp_sys_enter_write, and exec_hook for --match exec.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

#define CAPTURE_BYTES 32
#define SYSCALL_WRITE_NR 1 /* x86-64 */

#include "write_events.h"

/* Set by the loader before load (methods/core_loader.py mirrors this layout). */
struct tapbench_options {
    u32 target_tgid;  /* the process to watch; 0 with match_exec */
    u32 match_exec;   /* 1: the process is the first to exec a program named comm_lo/comm_hi */
    u64 comm_lo, comm_hi; /* that name: the kernel's 16 bytes, NUL-padded, as two words */
    u32 count_only;   /* the floor: count the matching writes, send nothing */
    u32 submit_flags; /* 0: wake the consumer when it had caught up; BPF_RB_NO_WAKEUP: never */
    u64 test_extra_ns; /* test-only: busy work per write (the gate's power benchmark) */
    u32 watched_fd;   /* the descriptor whose writes are events (1, stdout, unless --fd) */
    u32 reserved;
};
const volatile struct tapbench_options options = {};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 20); /* the loader sets the run's size before load */
} events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, COUNTER_SLOTS);
    __type(key, u32);
    __type(value, u64);
} counters SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, u32);
} watched SEC(".maps");

static __always_inline struct move_event *ringbuf_reserve(void)
{
    return bpf_ringbuf_reserve(&events, sizeof(struct move_event), 0);
}

static __always_inline void ringbuf_submit(struct move_event *event)
{
    bpf_ringbuf_submit(event, options.submit_flags);
}

static __always_inline void count(u32 slot)
{
    u64 *value = bpf_map_lookup_elem(&counters, &slot);
    if (value)
        (*value)++;
}

static __always_inline u32 watched_tgid(void)
{
    if (!options.match_exec)
        return options.target_tgid;
    u32 zero = 0;
    u32 *tgid = bpf_map_lookup_elem(&watched, &zero);
    return tgid ? *tgid : 0;
}

#define RINGBUF_RESERVE(size) ringbuf_reserve()
#define RINGBUF_SUBMIT(event) ringbuf_submit(event)
#define COUNT(slot) count(slot)
#define WATCHED_TGID() watched_tgid()
#define COUNT_ONLY (options.count_only)
#define WATCHED_FD (options.watched_fd)
#define TEST_EXTRA_NS_VALUE (options.test_extra_ns)
/* pt_regs' dx, its offset relocated by libbpf to this kernel's layout (CO-RE). */
#define REGS_DX(regs) __builtin_preserve_access_index(&((struct pt_regs *)(regs))->dx)

#define WRITE_EVENTS_LOGIC
#include "write_events.h"

SEC("raw_tracepoint/sys_enter")
int raw_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
    return on_sys_enter((void *)ctx->args[0], (long)ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_enter_write")
int tp_sys_enter_write(struct trace_event_raw_sys_enter *ctx)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    if (!is_target(pid_tgid))
        return 0;
    return record_write(pid_tgid, ctx->args[0], (const char *)ctx->args[1], ctx->args[2]);
}

/* The first exec of a program with the target's name: from then on, that process is watched.
 * The comm is the kernel's 15-character name, already the new program's at this tracepoint. */
SEC("tracepoint/sched/sched_process_exec")
int exec_hook(void *ctx)
{
    u64 comm[2] = {};
    bpf_get_current_comm(comm, sizeof(comm));
    if (comm[0] != options.comm_lo || comm[1] != options.comm_hi)
        return 0;
    u32 zero = 0;
    u32 *tgid = bpf_map_lookup_elem(&watched, &zero);
    if (tgid && *tgid == 0)
        *tgid = bpf_get_current_pid_tgid() >> 32;
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
