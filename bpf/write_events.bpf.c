/* tapbench eBPF observer: one event per write() of the watched process to its stdout.
 *
 * methods/ebpf.py specialises this text by prepending #defines:
 *   TARGET_TGID     process to watch (all its threads count); or, instead,
 *   TARGET_COMM_LO, TARGET_COMM_HI   the name of a program not started yet, as its kernel
 *                   name's 16 bytes (NUL-padded) in two little-endian words: a program on sched_process_exec
 *                   writes the tgid of the first process that execs it into the map `watched`,
 *                   and the write hooks compare with that (one map lookup per write)
 *   WATCHED_FD      descriptor whose writes are moves (1, stdout)
 *   CAPTURE_BYTES   how much of the buffer to copy (32)
 *   RINGBUF_PAGES   ring buffer size in pages (a power of two)
 *   SUBMIT_FLAGS    0: the kernel wakes the consumer when it had caught up (adaptive);
 *                   BPF_RB_NO_WAKEUP: never wake it, the consumer polls on a timer
 *   HOOK_RAW_SYS_ENTER    attach to raw tracepoint sys_enter, filtered on SYSCALL_WRITE_NR;
 *   HOOK_GO_UPROBE  a uprobe program, attached by methods/uprobe.py inside Go's syscall.write;
 *   CAPTURE_COUNT_ONLY    the floor: count the matching writes, copy and send nothing;
 *                   otherwise attach to the tracepoint syscalls:sys_enter_write.
 */

/* x86-64 struct pt_regs, declared here rather than included: <linux/ptrace.h> pulls in enough
 * kernel headers to triple the compile time at every start, for the few fields read below. */
struct x86_regs {
    unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
    unsigned long ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

struct move_event {
    u64 ts_ns;          /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
    u32 pid;
    u32 tid;
    u64 count;          /* bytes the write() asked for */
    u32 copied;         /* bytes of head that hold the buffer's start (0 if unreadable) */
    u32 reserved;
    char head[CAPTURE_BYTES];
};

BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);

/* Per-CPU so the counting itself never contends between the target's threads. */
enum { COUNTER_MATCHED, COUNTER_LOST, COUNTER_SLOTS };
BPF_PERCPU_ARRAY(counters, u64, COUNTER_SLOTS);

static __always_inline void count(int slot)
{
    u64 *value = counters.lookup(&slot);
    if (value)
        (*value)++;
}

#ifdef TARGET_COMM_LO
BPF_ARRAY(watched, u32, 1);

/* Whether a task belongs to the process caught at exec (none yet: nothing is). */
static __always_inline bool is_target(u64 pid_tgid)
{
    int zero = 0;
    u32 *tgid = watched.lookup(&zero);
    return tgid && *tgid && *tgid == (u32)(pid_tgid >> 32);
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
#else
#define is_target(pid_tgid) (((pid_tgid) >> 32) == TARGET_TGID)
#endif

static __always_inline int record_write(u64 pid_tgid, u64 fd, const char *buf, u64 bytes)
{
    if (fd != WATCHED_FD)
        return 0;
    count(COUNTER_MATCHED);
#ifdef CAPTURE_COUNT_ONLY
    return 0;
#endif
    struct move_event *event = events.ringbuf_reserve(sizeof(struct move_event));
    if (!event) {
        count(COUNTER_LOST);    /* ring full: counted, never silent */
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
#ifdef TEST_EXTRA_NS
    /* Test-only (the gate's power benchmark): this layer made dearer per write. */
    u64 started = bpf_ktime_get_ns();
    for (int i = 0; i < 4096 && bpf_ktime_get_ns() - started < TEST_EXTRA_NS; i++)
        ;
#endif
    events.ringbuf_submit(event, SUBMIT_FLAGS);
    return 0;
}

#ifdef HOOK_RAW_SYS_ENTER
/* Runs for every system call of every task: reject on the syscall number first, it is cheapest. */
RAW_TRACEPOINT_PROBE(sys_enter)
{
    if (ctx->args[1] != SYSCALL_WRITE_NR)
        return 0;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    if (!is_target(pid_tgid))
        return 0;
    struct x86_regs *regs = (struct x86_regs *)ctx->args[0];
    /* write(fd, buf, count) arrives in di, si, dx. x86-64 pt_regs stores them adjacent, in
     * the order dx, si, di, so one helper call reads all three instead of three calls. */
    struct { u64 dx, si, di; } args = {};
    _Static_assert(offsetof(struct x86_regs, di) - offsetof(struct x86_regs, dx) == 16,
                   "pt_regs layout: dx, si, di must be adjacent");
    if (bpf_probe_read_kernel(&args, sizeof(args), &regs->dx) != 0) {
        count(COUNTER_LOST);    /* a write of the target we could not examine: not silent */
        return 0;
    }
    return record_write(pid_tgid, args.di, (const char *)args.si, args.dx);
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
