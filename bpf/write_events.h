/* What both loaders of the eBPF write hook run, the same code: the record a write becomes,
 * the test that a write is the target's, and filling and sending the record.
 *
 *   bpf/write_events.bpf.c       bcc: compiled by clang inside tapbench at its first start
 *   bpf/write_events.core.bpf.c  CO-RE: compiled by `make` into an object, relocated by libbpf
 *
 * Each front includes this file twice: first for the record's type, then, after declaring its
 * maps and defining WRITE_EVENTS_LOGIC and the following, for the logic:
 *   RINGBUF_RESERVE(size), RINGBUF_SUBMIT(event)   the ring buffer `events`
 *   COUNT(slot)                                    the per-CPU `counters` array
 *   WATCHED_TGID()       the process watched: a constant, or what the exec hook stored (0: none yet)
 *   COUNT_ONLY           true for the floor: count the matching writes, send nothing
 *   TEST_EXTRA_NS_VALUE  test-only busy work per write (the gate's power benchmark), 0 normally
 *   REGS_DX(regs)        the address of pt_regs' dx in the kernel, for the raw hook
 *   WATCHED_FD           the descriptor whose writes are events
 * and CAPTURE_BYTES, SYSCALL_WRITE_NR as constants.
 */
#ifndef TAPBENCH_WRITE_EVENTS_TYPES
#define TAPBENCH_WRITE_EVENTS_TYPES

struct move_event {
    u64 ts_ns;        /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
    u32 pid;
    u32 tid;
    u64 count;        /* bytes the write() asked for */
    u32 copied;       /* bytes of head that hold the buffer's start (0 if unreadable) */
    u32 reserved;
    char head[CAPTURE_BYTES];
};

/* Per-CPU counters, so the counting itself never contends between the target's threads. */
enum { COUNTER_MATCHED, COUNTER_LOST, COUNTER_SLOTS };
#endif

#if defined(WRITE_EVENTS_LOGIC) && !defined(TAPBENCH_WRITE_EVENTS_LOGIC)
#define TAPBENCH_WRITE_EVENTS_LOGIC

/* Whether a task belongs to the watched process (none yet: nothing is). */
static __always_inline int is_target(u64 pid_tgid)
{
    u32 tgid = WATCHED_TGID();
    return tgid && tgid == (u32)(pid_tgid >> 32);
}

static __always_inline int record_write(u64 pid_tgid, u64 fd, const char *buf, u64 bytes)
{
    if (fd != WATCHED_FD)
        return 0;
    COUNT(COUNTER_MATCHED);
    if (COUNT_ONLY)
        return 0;
    struct move_event *event = RINGBUF_RESERVE(sizeof(struct move_event));
    if (!event) {
        COUNT(COUNTER_LOST);    /* ring full: counted, never silent */
        return 0;
    }
    event->ts_ns = bpf_ktime_get_ns();
    event->pid = pid_tgid >> 32;
    event->tid = (u32)pid_tgid;
    event->count = bytes;
    /* Copy no more than the write holds, so nothing beyond the caller's buffer is read. */
    u32 copy = bytes < CAPTURE_BYTES ? bytes : CAPTURE_BYTES;
    if (bpf_probe_read_user(event->head, copy, buf) != 0)
        copy = 0;
    event->copied = copy;
    event->reserved = 0;
    if (TEST_EXTRA_NS_VALUE) {
        /* Test-only (the gate's power benchmark): this layer made dearer per write. */
        u64 started = bpf_ktime_get_ns();
        for (int i = 0; i < 4096 && bpf_ktime_get_ns() - started < TEST_EXTRA_NS_VALUE; i++)
            ;
    }
    RINGBUF_SUBMIT(event);
    return 0;
}

/* The raw hook on sys_enter: runs for every system call of every task, so it rejects on the
 * system call's number first, the cheapest test. write(fd, buf, count) arrives in di, si, dx;
 * x86-64 pt_regs keeps them adjacent in the order dx, si, di, so one read takes all three
 * instead of three reads. */
static __always_inline int on_sys_enter(void *regs, long id)
{
    if (id != SYSCALL_WRITE_NR)
        return 0;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    if (!is_target(pid_tgid))
        return 0;
    struct { u64 dx, si, di; } args = {};
    if (bpf_probe_read_kernel(&args, sizeof(args), REGS_DX(regs)) != 0) {
        COUNT(COUNTER_LOST);    /* a write of the target we could not examine: not silent */
        return 0;
    }
    return record_write(pid_tgid, args.di, (const char *)args.si, args.dx);
}

#endif
