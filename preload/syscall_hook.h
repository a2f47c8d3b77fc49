/* The system-call hook shared by the two in-process exhaustive techniques, zpoline.c and
 * sud.c: an entry reached as if the caller's `syscall` instruction had been `call *%rax`, which
 * makes the call on a stack of its own and records writes to the watched descriptor into the
 * ring (ring_writer.h). How the caller gets here is the includer's: a rewritten instruction and
 * a trampoline at address 0 (zpoline), or a SIGSYS that Syscall User Dispatch raises (sud).
 *
 * The hook runs on a stack of its own (per thread, in TLS), not on the caller's: a goroutine's
 * stack may have little room left below a system call (Go's nosplit chains may use all but the
 * guard), and the recording must not depend on it. A system call made from a signal handler
 * that interrupted the hook stays on the stack it is on.
 *
 * Four system calls cannot return through the hook's frame and are made in the entry itself:
 *   - rt_sigreturn reads the signal frame at rsp: the return address is dropped first;
 *   - vfork, and clone/clone3 sharing memory without a new stack: the child runs on the
 *     parent's stack and would overwrite the return address the parent returns through, so it
 *     is kept in TLS (which the two share) and both jump through it;
 *   - clone/clone3 with a new stack: the child starts there, so the return address (and for
 *     clone3 the argument register) is put on the new stack for it, from a copy of clone3's
 *     arguments, never the caller's own; the child calls tapbench_thread_started() first.
 * A fork()ed child (its own copy of memory) stops recording, like preload's.
 */
#ifndef TAPBENCH_SYSCALL_HOOK_H
#define TAPBENCH_SYSCALL_HOOK_H

#include "ring_writer.h"

#define HOOK_SET_UP 1
#define HOOK_FAILED 2

/* The hook's state, for tapbench, which waits on the word (a futex): zpoline's observer puts
 * vm.mmap_min_addr back once it is set. */
static void announce_hook_state(struct tapbench_ring_header *header, uint32_t state)
{
    atomic_store(&header->hook_state, state);
    raw_syscall(SYS_futex, (long)&header->hook_state, FUTEX_WAKE, 1, 0, 0, 0);
}

#define HOOK_STACK_BYTES 32768    /* the hook's frames, and a signal frame or two on top */

/* Per thread, read by the entry (assembly below) through their initial-exec TLS offsets. */
__attribute__((visibility("hidden"), tls_model("initial-exec")))
__thread uint8_t tapbench_in_hook;
__attribute__((visibility("hidden"), tls_model("initial-exec")))
__thread uint64_t tapbench_vfork_return;
__attribute__((visibility("hidden"), tls_model("initial-exec"), aligned(16)))
__thread char tapbench_hook_stack[HOOK_STACK_BYTES];

void tapbench_syscall_entry(void);

/* The entry, reached as if the caller's `syscall` had been `call *%rax` (zpoline: it was, then
 * through the trampoline; SUD: the SIGSYS handler makes it so), with the caller's registers as at
 * its `syscall` and its return address at (%rsp). rcx and r11 are free: `syscall` itself clobbers
 * them. Everything else is as the kernel would leave it: rax gets the result. */
__asm__(
    ".text\n"
    ".globl tapbench_syscall_entry\n"
    ".hidden tapbench_syscall_entry\n"
    ".type tapbench_syscall_entry, @function\n"
    "tapbench_syscall_entry:\n"
    "    cmpq $15, %rax\n"               /* rt_sigreturn */
    "    je .Lsigreturn\n"
    "    cmpq $58, %rax\n"               /* vfork */
    "    je .Lshared_stack\n"
    "    cmpq $56, %rax\n"               /* clone */
    "    je .Lclone\n"
    "    cmpq $435, %rax\n"              /* clone3 */
    "    je .Lclone3\n"
    /* Any other call: onto the hook's stack (unless already in the hook), then into C. */
    ".Lgeneral:\n"
    "    movq %rsp, %rcx\n"
    "    movq tapbench_in_hook@gottpoff(%rip), %r11\n"
    "    cmpb $0, %fs:(%r11)\n"
    "    jne .Lnested\n"
    "    movb $1, %fs:(%r11)\n"
    "    movq tapbench_hook_stack@gottpoff(%rip), %r11\n"
    "    addq %fs:0, %r11\n"             /* %fs:0 holds the thread pointer itself */
    "    addq $" "32768" ", %r11\n"
    "    jmp .Lswitch\n"
    ".Lnested:\n"
    "    leaq -128(%rsp), %r11\n"        /* below the interrupted code's red zone */
    "    orq $1, %rcx\n"                 /* remember: nested, the flag is not ours to clear */
    ".Lswitch:\n"
    "    andq $-16, %r11\n"
    "    movq %r11, %rsp\n"              /* one move: a signal never sees a half-made rsp */
    "    pushq %rcx\n"
    "    pushq %rdi\n"
    "    pushq %rsi\n"
    "    pushq %rdx\n"
    "    pushq %r10\n"
    "    pushq %r8\n"
    "    pushq %r9\n"
    "    pushq %r9\n"                    /* a6, the 7th argument, on the stack; 16-aligned */
    "    movq %r8, %r9\n"
    "    movq %r10, %r8\n"
    "    movq %rdx, %rcx\n"
    "    movq %rsi, %rdx\n"
    "    movq %rdi, %rsi\n"
    "    movq %rax, %rdi\n"
    "    call tapbench_hooked_syscall\n"
    "    addq $8, %rsp\n"
    "    popq %r9\n"
    "    popq %r8\n"
    "    popq %r10\n"
    "    popq %rdx\n"
    "    popq %rsi\n"
    "    popq %rdi\n"
    "    popq %rcx\n"
    "    btrq $0, %rcx\n"                /* CF: nested */
    "    movq %rcx, %rsp\n"
    "    jc 1f\n"
    "    movq tapbench_in_hook@gottpoff(%rip), %r11\n"
    "    movb $0, %fs:(%r11)\n"
    "1:  ret\n"
    /* rt_sigreturn: the signal frame starts where the caller's rsp was. */
    ".Lsigreturn:\n"
    "    addq $8, %rsp\n"
    "    syscall\n"
    "    ud2\n"
    /* vfork-like: parent and child both continue through the address kept in TLS. */
    ".Lshared_stack:\n"
    "    movq tapbench_vfork_return@gottpoff(%rip), %r11\n"
    "    popq %fs:(%r11)\n"
    "    syscall\n"
    "    movq tapbench_vfork_return@gottpoff(%rip), %r11\n"
    "    jmpq *%fs:(%r11)\n"
    /* clone(flags = rdi, stack = rsi, ...) */
    ".Lclone:\n"
    "    testq %rsi, %rsi\n"
    "    jz .Lclone_same_stack\n"
    "    movq (%rsp), %rcx\n"
    "    subq $8, %rsi\n"
    "    movq %rcx, (%rsi)\n"            /* the child's return address, on its own stack */
    "    syscall\n"
    "    leaq 8(%rsi), %rsi\n"           /* lea: no flags touched */
    "    testq %rax, %rax\n"
    "    jnz 4f\n"
    "    call .Lthread_started\n"        /* the child, on its new stack */
    "4:  ret\n"
    ".Lclone_same_stack:\n"
    "    testq $0x100, %rdi\n"           /* CLONE_VM */
    "    jnz .Lshared_stack\n"
    "    jmp .Lgeneral\n"                /* a fork: the child has a copy of this stack */
    /* clone3(args = rdi, size = rsi): args->stack at 40, args->stack_size at 48. */
    ".Lclone3:\n"
    "    cmpq $64, %rsi\n"
    "    jb .Lgeneral\n"                 /* too short to be valid: the kernel says so */
    "    cmpq $0, 40(%rdi)\n"
    "    je .Lclone3_same_stack\n"
    "    cmpq $256, %rsi\n"
    "    ja .Lclone3_too_large\n"
    /* A copy below the red zone: [r11] the caller's rdi, [r11 + 8 ...] the arguments. */
    "    leaq -408(%rsp), %r11\n"
    "    andq $-16, %r11\n"
    "    movq %rdi, (%r11)\n"
    "    xorl %ecx, %ecx\n"
    "2:  movb (%rdi,%rcx), %al\n"
    "    movb %al, 8(%r11,%rcx)\n"
    "    incq %rcx\n"
    "    cmpq %rsi, %rcx\n"
    "    jb 2b\n"
    "    leaq 8(%r11), %rdi\n"
    "    subq $16, 48(%rdi)\n"           /* room for the caller's rdi and the return address */
    "    movq 40(%rdi), %rcx\n"
    "    addq 48(%rdi), %rcx\n"          /* where the child's rsp starts */
    "    movq (%r11), %rax\n"
    "    movq %rax, (%rcx)\n"
    "    movq (%rsp), %rax\n"
    "    movq %rax, 8(%rcx)\n"
    "    movl $435, %eax\n"
    "    syscall\n"
    "    testq %rax, %rax\n"
    "    jz 3f\n"
    "    leaq -408(%rsp), %rdi\n"        /* the parent: its rdi back from the copy */
    "    andq $-16, %rdi\n"
    "    movq (%rdi), %rdi\n"
    "    ret\n"
    "3:  call .Lthread_started\n"
    "    popq %rdi\n"                    /* the child: its rdi, then the return address */
    "    ret\n"
    ".Lclone3_same_stack:\n"
    "    testq $0x100, (%rdi)\n"         /* CLONE_VM */
    "    jnz .Lshared_stack\n"
    "    jmp .Lgeneral\n"
    /* A new thread's first instructions: tapbench_thread_started() with every register kept. */
    ".Lthread_started:\n"
    "    pushq %rbp\n"
    "    movq %rsp, %rbp\n"
    "    andq $-16, %rsp\n"
    "    pushq %rax\n"
    "    pushq %rdi\n"
    "    pushq %rsi\n"
    "    pushq %rdx\n"
    "    pushq %r8\n"
    "    pushq %r9\n"
    "    pushq %r10\n"
    "    pushq %r10\n"                   /* 16-aligned */
    "    call tapbench_thread_started\n"
    "    popq %r10\n"
    "    popq %r10\n"
    "    popq %r9\n"
    "    popq %r8\n"
    "    popq %rdx\n"
    "    popq %rsi\n"
    "    popq %rdi\n"
    "    popq %rax\n"
    "    movq %rbp, %rsp\n"
    "    popq %rbp\n"
    "    ret\n"
    ".Lclone3_too_large:\n"              /* arguments larger than any kernel's: not copied */
    "    movq $-38, %rax\n"              /* -ENOSYS: glibc then falls back to clone */
    "    ret\n"
    ".size tapbench_syscall_entry, .-tapbench_syscall_entry\n");

_Static_assert(HOOK_STACK_BYTES == 32768, "the entry above adds this size by hand");

/* Defined by the includer: the call the entry hands over, made (and adjusted, where the
 * mechanism needs it); and what a new thread does first (SUD: switch dispatch on for it). */
static long filtered_syscall(long number, long a1, long a2, long a3, long a4, long a5, long a6);
__attribute__((visibility("hidden"))) void tapbench_thread_started(void);

/* Every system call but those the entry makes itself, on the hook's stack. */
__attribute__((visibility("hidden"), used))
long tapbench_hooked_syscall(long number, long a1, long a2, long a3, long a4, long a5, long a6)
{
    if (number == SYS_write && ring != NULL && a1 == watched_fd) {
        if (ring->count_only) {
            long written = raw_syscall(number, a1, a2, a3, a4, a5, a6);
            atomic_fetch_add_explicit(&ring->counted, 1, memory_order_relaxed);
            return written;
        }
        uint64_t stamp = stamp_now();
        long written = raw_syscall(number, a1, a2, a3, a4, a5, a6);
        account_write((const void *)a2, (size_t)a3, written, stamp);
        return written;
    }
    long result = filtered_syscall(number, a1, a2, a3, a4, a5, a6);
    /* Here only forks reach: a clone that shares memory is made in the entry. */
    if (result == 0 && (number == SYS_fork || number == SYS_clone || number == SYS_clone3))
        stop_recording_in_child();
    return result;
}


#endif
