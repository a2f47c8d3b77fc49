/* The shared-memory ring between the LD_PRELOAD hook (producers: every thread of the target)
 * and tapbench (one consumer). Declared once here; methods/preload.py mirrors it and checks
 * the mirror against tapbench_ring_layout, which the hook library exports.
 *
 * Two hooks write it: the LD_PRELOAD write() hook (hook.c) and the zpoline system-call hook
 * (zpoline.c), with the producer code of ring_writer.h.
 *
 * Protocol: after the real write() returned n >= 0, a producer claims sequence number s by
 * compare-and-swap on `claimed` (only if s - consumed < slot_count, else it counts one lost
 * event), fills slot s % slot_count with at most n bytes of the buffer, then
 * publishes it by storing s + 1 into the slot's `published` with release ordering. The
 * consumer takes slots in sequence order while `published` matches, then advances `consumed`.
 * Nothing blocks and nothing allocates.
 *
 * The target can write all of it (the ring is mapped into its memory), so the consumer trusts
 * none of it: it keeps its own read position (`consumed` here is only its announcement to the
 * producers) and attributes every slot to the process it launched, never to `hook_pid`; it
 * checks every position, counter, length and stamp it reads against what is possible, and ends
 * with a finding when one is not. The memfd is sealed, so no one can shrink it under a reader.
 */
#ifndef TAPBENCH_RING_H
#define TAPBENCH_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define TAPBENCH_RING_MAGIC 0x52425054u /* "TPBR" */
#define TAPBENCH_RING_VERSION 8u
#define TAPBENCH_CAPTURE_BYTES 32

struct tapbench_slot { /* one cache line */
    _Atomic uint64_t published; /* sequence + 1 once the slot is complete */
    uint64_t ts_ns;             /* taken before the real write(): CLOCK_MONOTONIC ns, or TSC
                                   ticks if stamp_tsc (tapbench converts them to ns) */
    uint64_t count;             /* bytes the write() asked for */
    uint32_t tid;
    uint32_t copied;            /* bytes of head that hold the buffer's start: at most what
                                   the real write() wrote (a partial write copies less) */
    char head[TAPBENCH_CAPTURE_BYTES];
};

/* Fields written by different sides sit on different cache lines. */
struct tapbench_ring_header {
    uint32_t magic;
    uint32_t version;
    uint32_t slot_count;        /* a power of two */
    uint32_t slot_size;
    _Atomic uint32_t hook_pid;  /* the first process the hook loaded into; 0: never loaded */
    uint32_t count_only;        /* set by tapbench before launch: the floor, count and record nothing */
    uint32_t wake_consumer;     /* set by tapbench before launch: adaptive wakeups (a futex) */
    uint32_t stamp_tsc;         /* set by tapbench before launch: stamp with the TSC, which
                                   it has found invariant and the kernel's clock source */
    uint32_t watched_fd;        /* set by tapbench before launch: the descriptor whose writes
                                   are events (1, stdout, unless --fd) */
    /* The system-call hooks only (syscall_hook.h), written at start-up; preload's leaves both 0: */
    _Atomic uint32_t hook_state; /* 0 not yet set up, 1 set up (zpoline: trampoline mapped at 0
                                   and text rewritten; sud: dispatch on), 2 could not be */
    uint32_t rewritten_sites;   /* zpoline: system-call instructions rewritten into calls */
    uint32_t pad0[5];
    _Atomic uint64_t claimed;   /* next sequence number (producers) */
    uint64_t pad1[7];
    _Atomic uint64_t consumed;  /* sequence numbers below this are free again (consumer) */
    _Atomic uint32_t consumer_sleeping; /* a futex word: 1 while the consumer waits on it; on the
                                       consumer's line, which producers read anyway */
    uint32_t pad2a;
    uint64_t pad2[6];
    _Atomic uint64_t lost;      /* writes to the watched fd that found the ring full */
    _Atomic uint64_t failed_writes; /* writes to the watched fd that returned an error: not
                                       recorded, nothing was written (bad pointer, EAGAIN ...) */
    _Atomic uint64_t counted;   /* count_only: every write() to the watched fd */
    uint64_t pad3[5];           /* writes seen = claimed + lost: no second counter to bump */
};

struct tapbench_ring_layout { /* what methods/preload.py checks its mirror against */
    uint32_t header_size, slot_size, capture_bytes, off_watched_fd, magic, version;
    uint32_t off_slot_count, off_hook_pid, off_count_only, off_wake_consumer, off_stamp_tsc;
    uint32_t off_claimed;
    uint32_t off_consumed, off_consumer_sleeping, off_lost, off_failed_writes, off_counted;
    uint32_t off_published, off_ts_ns, off_count, off_tid, off_copied, off_head;
    uint32_t off_hook_state, off_rewritten_sites;
};

_Static_assert(sizeof(struct tapbench_slot) == 64, "one slot, one cache line");
_Static_assert(sizeof(struct tapbench_ring_header) == 256, "header is four cache lines");

#endif
