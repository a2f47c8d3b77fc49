/* A target for the special paths of the zpoline and SUD hooks, each of which cannot return
 * through the hook's own frame: a signal handler's return (rt_sigreturn), a thread (glibc's
 * clone3 with a new stack), a fork, and posix_spawn (clone with CLONE_VM|CLONE_VFORK on a new
 * stack); and for SUD's, a SIGSYS handler of its own and every signal blocked. What it prints
 * on stderr is the same watched or not (with a system call of its own, not libc's); its three
 * moves go to stdout with write(). With --stop it stops itself after its first move, so that a
 * test can read its text. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
static volatile sig_atomic_t handled;

static volatile sig_atomic_t handled_sigsys;

static void on_usr1(int sig)
{
    handled = sig;
}

static void on_sigsys(int sig)
{
    handled_sigsys = sig;
}

static void *thread_main(void *line)
{
    return (void *)write(STDOUT_FILENO, line, strlen(line));
}

/* A system call instruction in this program's own text, not libc's. */
static long raw_getpid(void)
{
    long pid;
    __asm__ volatile("syscall" : "=a"(pid) : "a"(SYS_getpid) : "rcx", "r11", "memory");
    return pid;
}

int main(int argc, char **argv)
{
    write(STDOUT_FILENO, "rock 0 0\n", 9);
    if (argc > 1 && strcmp(argv[1], "--stop") == 0)
        raise(SIGSTOP);
    signal(SIGUSR1, on_usr1);
    raise(SIGUSR1);
    /* its own SIGSYS handler, then every signal blocked for the rest (SUD's hook keeps SIGSYS
     * for itself and unblocked: the program must not tell) */
    struct sigaction sigsys_action = {.sa_handler = on_sigsys}, sigsys_read_back;
    sigaction(SIGSYS, &sigsys_action, NULL);
    raise(SIGSYS);
    sigaction(SIGSYS, NULL, &sigsys_read_back);
    sigset_t every_signal;
    sigfillset(&every_signal);
    sigprocmask(SIG_BLOCK, &every_signal, NULL);
    pthread_t thread;
    void *thread_wrote;
    int thread_error = pthread_create(&thread, NULL, thread_main, "paper 0 1\n");
    if (thread_error == 0)
        pthread_join(thread, &thread_wrote);
    int forked_status = -1;
    pid_t child = fork();
    if (child == 0)
        _exit(7);
    waitpid(child, &forked_status, 0);
    pid_t spawned;
    int spawned_status = -1;
    char *spawn_argv[] = {"/bin/sh", "-c", "exit 5", NULL};
    int spawn_error = posix_spawn(&spawned, "/bin/sh", NULL, NULL, spawn_argv, environ);
    if (spawn_error == 0)
        waitpid(spawned, &spawned_status, 0);
    sigset_t blocked;
    sigprocmask(SIG_BLOCK, NULL, &blocked);
    dprintf(STDERR_FILENO, "handled %d and %d (read back: %s, SIGSYS blocked: %d), thread %d wrote %ld, "
            "fork exit %d, spawn %d exit %d, getpid %s\n",
            handled, handled_sigsys, sigsys_read_back.sa_handler == on_sigsys ? "ours" : "another",
            sigismember(&blocked, SIGSYS), thread_error, thread_error ? -1L : (long)thread_wrote, WEXITSTATUS(forked_status),
            spawn_error, WEXITSTATUS(spawned_status), raw_getpid() == getpid() ? "same" : "differs");
    write(STDOUT_FILENO, "scissors 0 2\n", 13);
    return 0;
}
