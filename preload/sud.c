/* tapbench SUD hook: Syscall User Dispatch (Linux 5.11, prctl(PR_SET_SYSCALL_USER_DISPATCH)),
 * switched on by this library, loaded with LD_PRELOAD. Every system call the process makes
 * from outside this library's own text raises SIGSYS in the thread that made it, before the
 * kernel runs it; the handler below makes the interrupted thread continue as if its `syscall`
 * had been zpoline's `call *%rax`, into the same entry (syscall_hook.h), which records writes
 * to the watched descriptor into the preload ring and makes the call from this library's text,
 * where dispatch lets it through. Exhaustive with no rewriting, at a signal per system call.
 *
 * What it takes to share a process with Go's runtime (each found by a run that died):
 *   - Go installs its own handler for every signal, SIGSYS too: an rt_sigaction for SIGSYS is
 *     not passed on but kept (target_sigsys_action), and answered as if it had been: the target
 *     reads back what it set, and a SIGSYS that is not a dispatch (raised, or a seccomp trap)
 *     goes to its handler, or gets the default action or none, as it would have;
 *   - the kernel raises this SIGSYS by force: a thread that has it blocked is killed (status
 *     159). Go's handlers block every signal while they run, and Go and glibc block every
 *     signal around clone: SIGSYS is taken out of every mask set with rt_sigaction and
 *     rt_sigprocmask (from a copy: the caller's memory is never changed), and this handler
 *     runs with SA_NODEFER, so that a system call in a handler that interrupted it still works;
 *   - other handlers return through rt_sigreturn from outside this library: the entry makes
 *     it with the caller's stack as it was (syscall_hook.h);
 *   - dispatch is per thread and a new thread starts without it: the entry's clone paths call
 *     tapbench_thread_started() in the child, which switches it on there;
 *   - fork and exec switch it off: a forked child runs unwatched (children are not recorded),
 *     and a program exec'd in place loads this library again.
 * The target reads back the masks and the SIGSYS action it set. It can notice: a SIGSYS it
 * raises while it believes it blocked arrives at once, its own SIGSYS handler runs inside this
 * one (with this one's mask and stack), LD_PRELOAD, and each system call's cost.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <ucontext.h>

#include "syscall_hook.h"

__attribute__((visibility("default"))) const struct tapbench_ring_layout tapbench_ring_layout = TAPBENCH_RING_LAYOUT;

#ifndef SYS_USER_DISPATCH
#define SYS_USER_DISPATCH 2 /* si_code of a dispatched system call */
#endif
#define SA_RESTORER_FLAG 0x04000000
#define SIGSYS_BIT (1ul << (SIGSYS - 1))

/* The kernel's struct sigaction on x86-64 (not glibc's): what rt_sigaction takes. */
struct kernel_sigaction {
    void *handler;
    unsigned long flags;
    void *restorer;
    unsigned long mask;
};

/* This library's executable mapping: the system calls made from it are let through. */
static unsigned long allowed_start, allowed_length;
static bool dispatching;
void tapbench_sud_restorer(void);
static void on_sigsys(int signal_number, siginfo_t *info, void *context);
static struct kernel_sigaction our_action = {
    (void *)on_sigsys, SA_SIGINFO | SA_NODEFER | SA_ONSTACK | SA_RESTORER_FLAG, (void *)tapbench_sud_restorer, 0,
};
/* What the target believes its SIGSYS action is: what it was before ours, then what it set. */
static struct kernel_sigaction target_sigsys_action;

/* The return from this library's handler, made from inside the allowed text. */
__asm__(".text\n"
        ".globl tapbench_sud_restorer\n"
        ".hidden tapbench_sud_restorer\n"
        "tapbench_sud_restorer:\n"
        "    movl $15, %eax\n"
        "    syscall\n"
        "    ud2\n");

static long switch_dispatch_on(void)
{
    /* No selector: every system call from outside the allowed text is dispatched. */
    return raw_syscall(SYS_prctl, PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON, (long)allowed_start,
                       (long)allowed_length, 0, 0);
}

__attribute__((visibility("hidden"))) void tapbench_thread_started(void)
{
    if (dispatching)
        switch_dispatch_on();
}

/* A SIGSYS that is not a dispatch, handled as the target's own action says. */
static void forward_to_target(int signal_number, siginfo_t *info, void *context)
{
    struct kernel_sigaction action = target_sigsys_action;
    if (action.handler == SIG_IGN)
        return;
    if (action.handler == SIG_DFL) { /* the default: the process ends with SIGSYS */
        dispatching = false;
        raw_syscall(SYS_rt_sigaction, SIGSYS, (long)&action, 0, sizeof(unsigned long), 0, 0);
        raw_syscall(SYS_tgkill, raw_syscall(SYS_getpid, 0, 0, 0, 0, 0, 0),
                    raw_syscall(SYS_gettid, 0, 0, 0, 0, 0, 0), SIGSYS, 0, 0, 0);
        return;
    }
    if (action.flags & SA_SIGINFO)
        ((void (*)(int, siginfo_t *, void *))action.handler)(signal_number, info, context);
    else
        ((void (*)(int))action.handler)(signal_number);
}

/* A dispatched system call: continue the thread as if it had called the entry from the
 * `syscall` instruction (the return address goes where the call would have put it). rax and
 * the arguments are as the thread left them: the kernel rolled the call back. */
static void on_sigsys(int signal_number, siginfo_t *info, void *context)
{
    (void)signal_number;
    greg_t *registers = ((ucontext_t *)context)->uc_mcontext.gregs;
    if (info->si_code != SYS_USER_DISPATCH) { /* raised, or a seccomp trap: the target's */
        forward_to_target(signal_number, info, context);
        return;
    }
    registers[REG_RSP] -= 8;
    *(greg_t *)registers[REG_RSP] = registers[REG_RIP];
    registers[REG_RIP] = (greg_t)tapbench_syscall_entry;
}

/* Whether this thread believes it has SIGSYS blocked: what it reads back of its mask. */
static __thread bool sigsys_believed_blocked __attribute__((tls_model("initial-exec")));

/* rt_sigprocmask with SIGSYS never blocked in fact, and its mask read back as the thread set
 * it. A SIGSYS raised while the thread believes it blocked is still delivered at once. */
static long masked_without_sigsys(long how, const unsigned long *set, unsigned long *old_set)
{
    unsigned long mask = set != NULL ? *set & ~SIGSYS_BIT : 0;
    bool believed = sigsys_believed_blocked;
    long result = raw_syscall(SYS_rt_sigprocmask, how, set != NULL ? (long)&mask : 0, (long)old_set,
                              sizeof mask, 0, 0);
    if (result != 0)
        return result;
    if (old_set != NULL)
        *old_set = believed ? *old_set | SIGSYS_BIT : *old_set & ~SIGSYS_BIT;
    if (set != NULL && (*set & SIGSYS_BIT) && (how == SIG_BLOCK || how == SIG_SETMASK))
        sigsys_believed_blocked = true;
    else if (set != NULL && (how == SIG_UNBLOCK ? (*set & SIGSYS_BIT) != 0 : how == SIG_SETMASK))
        sigsys_believed_blocked = false;
    return 0;
}

/* SIGSYS stays ours and never blocked: the kernel kills a thread that blocks a forced signal. */
static long filtered_syscall(long number, long a1, long a2, long a3, long a4, long a5, long a6)
{
    if (number == SYS_rt_sigaction && a1 == SIGSYS && dispatching) { /* kept, never installed */
        if (a4 != sizeof(unsigned long))
            return -EINVAL;
        if (a3 != 0)
            *(struct kernel_sigaction *)a3 = target_sigsys_action;
        if (a2 != 0) {
            target_sigsys_action = *(const struct kernel_sigaction *)a2;
            target_sigsys_action.mask &= ~SIGSYS_BIT;
        }
        return 0;
    }
    if (number == SYS_rt_sigaction && a2 != 0 && dispatching) {
        struct kernel_sigaction action = *(const struct kernel_sigaction *)a2;
        action.mask &= ~SIGSYS_BIT;
        return raw_syscall(number, a1, (long)&action, a3, a4, a5, a6);
    }
    if (number == SYS_rt_sigprocmask && dispatching && a4 == sizeof(unsigned long))
        return masked_without_sigsys(a1, (const unsigned long *)a2, (unsigned long *)a3);
    return raw_syscall(number, a1, a2, a3, a4, a5, a6);
}

/* This library's executable mapping, from /proc/self/maps. */
static bool find_allowed_text(void)
{
    static char maps[1 << 18];
    FILE *file = fopen("/proc/self/maps", "re");
    if (file == NULL)
        return false;
    unsigned long own = (unsigned long)tapbench_syscall_entry;
    bool found = false;
    while (!found && fgets(maps, sizeof maps, file) != NULL) {
        unsigned long from, to;
        if (sscanf(maps, "%lx-%lx", &from, &to) == 2 && from <= own && own < to) {
            allowed_start = from;
            allowed_length = to - from;
            found = true;
        }
    }
    fclose(file);
    return found;
}

/* Only in the process that claimed the ring: a child that inherited LD_PRELOAD runs untouched. */
__attribute__((constructor)) static void tapbench_sud_init(void)
{
    struct tapbench_ring_header *header = attach_ring();
    if (header == NULL)
        return;
    if (!find_allowed_text() || raw_syscall(SYS_rt_sigaction, SIGSYS, (long)&our_action, (long)&target_sigsys_action,
                                            sizeof(unsigned long), 0, 0) != 0) {
        announce_hook_state(header, HOOK_FAILED);
        return;
    }
    unsigned long unblock = SIGSYS_BIT;
    raw_syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, (long)&unblock, 0, sizeof unblock, 0, 0);
    ring = header;
    dispatching = true;
    if (switch_dispatch_on() != 0) {
        dispatching = false;
        announce_hook_state(header, HOOK_FAILED);
        return;
    }
    announce_hook_state(header, HOOK_SET_UP);
}
