/* tapbench zpoline hook (after Yasukata et al., USENIX ATC 2023): loaded with LD_PRELOAD, it
 * rewrites every `syscall` instruction of the process into `call *%rax` and maps a trampoline
 * at virtual address 0, so that every system call, libc's and Go's raw ones alike, calls into
 * this library, which records writes to the watched descriptor into the ring preload uses
 * (ring.h, ring_writer.h) and makes the call itself.
 *
 * `call *%rax` is two bytes, like `syscall`: the instruction is replaced whole, in place, and
 * nothing else moves. rax holds the system call's number (0 ... ~470), so the call lands in a
 * slide of NOPs at the bottom of the page at 0 that runs into a jump to tapbench_zpoline_entry
 * below. What that costs the target, and what it can notice:
 *   - the page at 0 needs vm.mmap_min_addr = 0 while the hook maps it: tapbench sets it for
 *     the launch and puts it back as soon as the hook says it is done (methods/zpoline.py).
 *     The page is mapped PROT_EXEC only: on a CPU with protection keys that is execute-only,
 *     elsewhere (no pku) a NULL read succeeds where it would have faulted;
 *   - the call pushes its return address at the caller's rsp - 8, inside the x86-64 red zone:
 *     code that keeps a value there across a system call would see it overwritten. Go uses
 *     no red zone; glibc's system-call wrappers keep nothing there;
 *   - the rewritten text and the trampoline are visible in /proc/self/maps and in the code.
 *
 * The hook runs on a stack of its own (per thread, in TLS), not on the caller's: a goroutine's
 * stack may have little room left below a system call (Go's nosplit chains may use all but the
 * guard), and the recording must not depend on it. A system call made from a signal handler
 * that interrupted the hook (or from the hook's own recursion, none) stays on the stack it is on.
 *
 * Four system calls cannot return through the hook's frame and are made in the entry itself:
 *   - rt_sigreturn reads the signal frame at rsp: the return address is dropped first;
 *   - vfork, and clone/clone3 sharing memory without a new stack: the child runs on the
 *     parent's stack and would overwrite the return address the parent returns through, so it
 *     is kept in TLS (which the two share) and both jump through it;
 *   - clone/clone3 with a new stack: the child starts there, so the return address (and for
 *     clone3 the argument register) is put on the new stack for it, from a copy of clone3's
 *     arguments, never the caller's own.
 * A fork()ed child (its own copy of memory) stops recording, like preload's.
 *
 * Which bytes are instructions is decided by libopcodes, sweeping each executable mapping
 * from its start (Go's text and glibc's hold no data); only a decoded two-byte 0f 05
 * (syscall) or 0f 34 (sysenter) is rewritten. This library's own mapping and the vDSO are left
 * alone. Nothing here relies on a destructor: Go leaves through exit_group, which runs none.
 */
#define _GNU_SOURCE
#include <dis-asm.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ring_writer.h"

__attribute__((visibility("default"))) const struct tapbench_ring_layout tapbench_ring_layout = TAPBENCH_RING_LAYOUT;

#define TRAMPOLINE_SLIDE 512      /* above every x86-64 system call number */
#define HOOK_STACK_BYTES 32768    /* the hook's frames, and a signal frame or two on top */

/* Per thread, read by the entry (assembly below) through their initial-exec TLS offsets. */
__attribute__((visibility("hidden"), tls_model("initial-exec")))
__thread uint8_t tapbench_in_hook;
__attribute__((visibility("hidden"), tls_model("initial-exec")))
__thread uint64_t tapbench_vfork_return;
__attribute__((visibility("hidden"), tls_model("initial-exec"), aligned(16)))
__thread char tapbench_hook_stack[HOOK_STACK_BYTES];

void tapbench_zpoline_entry(void);

/* The entry, reached from the trampoline by `jmp *%r11` with the caller's registers as at its
 * `syscall` and its return address at (%rsp). rcx and r11 are free: `syscall` itself clobbers
 * them. Everything else is as the kernel would leave it: rax gets the result. */
__asm__(
    ".text\n"
    ".globl tapbench_zpoline_entry\n"
    ".hidden tapbench_zpoline_entry\n"
    ".type tapbench_zpoline_entry, @function\n"
    "tapbench_zpoline_entry:\n"
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
    "    call tapbench_zpoline_syscall\n"
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
    "    ret\n"
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
    "3:  popq %rdi\n"                    /* the child: its rdi, then the return address */
    "    ret\n"
    ".Lclone3_same_stack:\n"
    "    testq $0x100, (%rdi)\n"         /* CLONE_VM */
    "    jnz .Lshared_stack\n"
    "    jmp .Lgeneral\n"
    ".Lclone3_too_large:\n"              /* arguments larger than any kernel's: not copied */
    "    movq $-38, %rax\n"              /* -ENOSYS: glibc then falls back to clone */
    "    ret\n"
    ".size tapbench_zpoline_entry, .-tapbench_zpoline_entry\n");

_Static_assert(HOOK_STACK_BYTES == 32768, "the entry above adds this size by hand");

/* Every system call but those the entry makes itself, on the hook's stack. */
__attribute__((visibility("hidden"), used))
long tapbench_zpoline_syscall(long number, long a1, long a2, long a3, long a4, long a5, long a6)
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
    long result = raw_syscall(number, a1, a2, a3, a4, a5, a6);
    /* Here only forks reach: a clone that shares memory is made in the entry. */
    if (result == 0 && (number == SYS_fork || number == SYS_clone || number == SYS_clone3))
        stop_recording_in_child();
    return result;
}

/* The page at 0: NOPs up to TRAMPOLINE_SLIDE, then movabs $entry, %r11; jmp *%r11. */
static bool map_trampoline(void)
{
    long page = raw_syscall(SYS_mmap, 0, 4096, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (page != 0)
        return false;
    uint8_t *code = (uint8_t *)page;
    /* The compiler knows page is 0 here and would make every store through it a trap (a
     * NULL dereference is undefined in C): hide the value from it. */
    __asm__("" : "+r"(code));
    for (int i = 0; i < TRAMPOLINE_SLIDE; i++)
        code[i] = 0x90;
    uint64_t entry = (uint64_t)tapbench_zpoline_entry;
    code[TRAMPOLINE_SLIDE] = 0x49; /* movabs $entry, %r11 */
    code[TRAMPOLINE_SLIDE + 1] = 0xbb;
    for (int i = 0; i < 8; i++)
        code[TRAMPOLINE_SLIDE + 2 + i] = (uint8_t)(entry >> (8 * i));
    code[TRAMPOLINE_SLIDE + 10] = 0x41; /* jmp *%r11 */
    code[TRAMPOLINE_SLIDE + 11] = 0xff;
    code[TRAMPOLINE_SLIDE + 12] = 0xe3;
    /* Execute-only where the CPU has protection keys; at least not writable. */
    return raw_syscall(SYS_mprotect, 0, 4096, PROT_EXEC, 0, 0, 0) == 0;
}

static int ignore_text(void *stream, const char *format, ...)
{
    (void)stream, (void)format;
    return 0;
}

static int ignore_styled_text(void *stream, enum disassembler_style style, const char *format, ...)
{
    (void)stream, (void)style, (void)format;
    return 0;
}

/* Rewrite the system-call instructions of [start, end), which is mapped with `protection`;
 * returns how many were, or -1 if the mapping could not be made writable. */
static long rewrite_mapping(uint8_t *start, uint8_t *end, int protection)
{
    if (raw_syscall(SYS_mprotect, (long)start, end - start, protection | PROT_WRITE, 0, 0, 0) != 0)
        return -1;
    disassemble_info info;
    init_disassemble_info(&info, NULL, ignore_text, ignore_styled_text);
    info.arch = bfd_arch_i386;
    info.mach = bfd_mach_x86_64;
    info.buffer = start;
    info.buffer_vma = (bfd_vma)start;
    info.buffer_length = end - start;
    disassemble_init_for_target(&info);
    disassembler_ftype decode = disassembler(bfd_arch_i386, false, bfd_mach_x86_64, NULL);
    long rewritten = 0;
    for (uint8_t *at = start; at < end;) {
        int length = decode((bfd_vma)at, &info);
        if (length <= 0)
            length = 1;
        if (length == 2 && at[0] == 0x0f && (at[1] == 0x05 || at[1] == 0x34)) {
            at[0] = 0xff; /* call *%rax */
            at[1] = 0xd0;
            rewritten++;
        }
        at += length;
    }
    raw_syscall(SYS_mprotect, (long)start, end - start, protection, 0, 0, 0);
    return rewritten;
}

/* Every executable mapping but this library's, the vDSO's and vsyscall's. The list is read
 * whole first: rewriting changes protections, and so the list. */
static long rewrite_text(void)
{
    static char maps[1 << 18];
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t length = 0;
    ssize_t got;
    while (length < sizeof maps - 1 && (got = read(fd, maps + length, sizeof maps - 1 - length)) > 0)
        length += (size_t)got;
    close(fd);
    maps[length] = '\0';
    uintptr_t own = (uintptr_t)tapbench_zpoline_entry;
    long total = 0;
    for (char *line = maps, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        unsigned long from, to;
        char permissions[5];
        if (sscanf(line, "%lx-%lx %4s", &from, &to, permissions) != 3 || permissions[2] != 'x')
            continue;
        if (permissions[0] != 'r' || from == 0 || (from <= own && own < to) ||
            strstr(line, "[vdso]") || strstr(line, "[vsyscall]"))
            continue;
        int protection = PROT_READ | PROT_EXEC | (permissions[1] == 'w' ? PROT_WRITE : 0);
        long rewritten = rewrite_mapping((uint8_t *)from, (uint8_t *)to, protection);
        if (rewritten < 0)
            return -1;
        total += rewritten;
    }
    return total;
}

/* tapbench waits on this word (a futex) to put vm.mmap_min_addr back. */
static void announce_trampoline(struct tapbench_ring_header *header, uint32_t state)
{
    atomic_store(&header->trampoline, state);
    raw_syscall(SYS_futex, (long)&header->trampoline, FUTEX_WAKE, 1, 0, 0, 0);
}

/* Only in the process that claimed the ring: a child that inherited LD_PRELOAD (and, once the
 * launch is over, can no longer map page 0) runs untouched. */
__attribute__((constructor)) static void tapbench_zpoline_init(void)
{
    struct tapbench_ring_header *header = attach_ring();
    if (header == NULL)
        return;
    if (!map_trampoline()) {
        announce_trampoline(header, 2);
        return;
    }
    long rewritten = rewrite_text();
    header->rewritten_sites = rewritten < 0 ? 0 : (uint32_t)rewritten;
    ring = header;
    announce_trampoline(header, rewritten < 0 ? 2 : 1);
}
