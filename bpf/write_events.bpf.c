/* tapbench eBPF observer: one event per write() of the watched process to its stdout.
 *
 * methods/ebpf.py specialises this text by prepending #defines:
 *   TARGET_TGID     process to watch (all its threads count); or, instead,
 *   TARGET_COMM_LO, TARGET_COMM_HI   the name of a program not started yet, as its kernel
 *                   name's 16 bytes (NUL-padded) in two little-endian words: a program on sched_process_exec
 *                   writes the tgid of the first process that execs it into the map `watched`,
 *                   and the write hooks compare with that (one map lookup per write)
 *   WATCHED_FD      descriptor whose writes are events (1, stdout, unless --fd)
 *   CAPTURE_BYTES   how much of the buffer to copy (32)
 *   RINGBUF_PAGES   ring buffer size in pages (a power of two)
 *   SUBMIT_FLAGS    0: the kernel wakes the consumer when it had caught up (adaptive);
 *                   BPF_RB_NO_WAKEUP: never wake it, the consumer polls on a timer
 *   HOOK_RAW_SYS_ENTER    attach to raw tracepoint sys_enter, filtered on SYSCALL_WRITE_NR;
 *   HOOK_GO_UPROBE  a uprobe program, attached by methods/uprobe.py inside Go's syscall.write;
 *   CAPTURE_COUNT_ONLY    the floor: count the matching writes, copy and send nothing;
 *                   otherwise attach to the tracepoint syscalls:sys_enter_write.
 * What it runs per write is in write_events.h, shared with the CO-RE build of the same hook
 * (write_events.core.bpf.c): the two loaders load the same program.
 */

/* x86-64 struct pt_regs, declared here rather than included: <linux/ptrace.h> pulls in enough
 * kernel headers to triple the compile time at every start, for the few fields read below. */
struct x86_regs {
    unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
    unsigned long ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

#include "write_events.h"

BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
BPF_PERCPU_ARRAY(counters, u64, COUNTER_SLOTS);

/* bcc's map calls, in functions (it refuses them in macros), typed: bcc takes the ring's record
 * type from what they reserve and submit. */
static __always_inline struct move_event *ringbuf_reserve(void)
{
    struct move_event *event = events.ringbuf_reserve(sizeof(struct move_event));
    return event;
}

static __always_inline void ringbuf_submit(struct move_event *event)
{
    events.ringbuf_submit(event, SUBMIT_FLAGS);
}

static __always_inline void count(int slot)
{
    u64 *value = counters.lookup(&slot);
    if (value)
        (*value)++;
}

#ifdef TARGET_COMM_LO
BPF_ARRAY(watched, u32, 1);

static __always_inline u32 watched_tgid(void)
{
    int zero = 0;
    u32 *tgid = watched.lookup(&zero);
    return tgid ? *tgid : 0;
}

/* The first exec of a program with the target's name: from then on, that process is watched.
 * The comm is the kernel's 15-character name, already the new program's at this tracepoint. */
TRACEPOINT_PROBE(sched, sched_process_exec)
{
    /* Two word compares, not a string: no constant data for the loader to place. */
    u64 comm[2] = {};
    bpf_get_current_comm(comm, sizeof(comm));
    if (comm[0] != TARGET_COMM_LO || comm[1] != TARGET_COMM_HI)
        return 0;
    int zero = 0;
    u32 *tgid = watched.lookup(&zero);
    if (tgid && *tgid == 0)
        *tgid = bpf_get_current_pid_tgid() >> 32;
    return 0;
}
#define WATCHED_TGID() watched_tgid()
#else
#define WATCHED_TGID() ((u32)TARGET_TGID)
#endif

#define RINGBUF_RESERVE(size) ringbuf_reserve()
#define RINGBUF_SUBMIT(event) ringbuf_submit(event)
#define COUNT(slot) count(slot)
#ifdef CAPTURE_COUNT_ONLY
#define COUNT_ONLY 1
#else
#define COUNT_ONLY 0
#endif
#ifdef TEST_EXTRA_NS
#define TEST_EXTRA_NS_VALUE TEST_EXTRA_NS
#else
#define TEST_EXTRA_NS_VALUE 0
#endif
#define REGS_DX(regs) (&((struct x86_regs *)(regs))->dx)
_Static_assert(offsetof(struct x86_regs, di) - offsetof(struct x86_regs, dx) == 16,
               "pt_regs layout: dx, si, di must be adjacent");

#define WRITE_EVENTS_LOGIC
#include "write_events.h"

#ifdef HOOK_RAW_SYS_ENTER
RAW_TRACEPOINT_PROBE(sys_enter)
{
    return on_sys_enter((void *)ctx->args[0], ctx->args[1]);
}
#elif defined(HOOK_GO_UPROBE)
/* Attached past the stack check of Go's syscall.write(fd int, p []byte), so that a call that
 * grows its stack (runtime.morestack jumps back to the function's first instruction) is seen
 * once. Go's register ABI passes fd in AX, the slice's pointer in BX and its length in CX. */
int on_go_syscall_write(struct x86_regs *ctx)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    if (!is_target(pid_tgid))
        return 0;
    return record_write(pid_tgid, ctx->ax, (const char *)ctx->bx, ctx->cx);
}
#else
TRACEPOINT_PROBE(syscalls, sys_enter_write)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    if (!is_target(pid_tgid))
        return 0;
    return record_write(pid_tgid, args->fd, args->buf, args->count);
}
#endif
