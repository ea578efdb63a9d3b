/* failsync: an LD_PRELOAD shim that makes fsync(2) and friends fail with EIO.
 *
 * Theory of operation
 * -------------------
 * A durable store must stop (fail-stop) when the kernel reports that a sync failed: the
 * data may not be on disk, so nothing written since the last good sync may be
 * acknowledged. Real I/O errors are hard to provoke in a test; this shim interposes the
 * libc entry points a process uses to sync (fsync, fdatasync, sync_file_range, syncfs,
 * msync is not covered) and, when told to, returns -1 with errno EIO *without* syncing.
 *
 * Environment (read once, at the first intercepted call):
 *
 *   FAILSYNC_MATCH    only calls on a file whose path contains this substring are
 *                     counted and may fail (e.g. ".log" for RocksDB's WAL files); the
 *                     others pass through. Unset: every call counts.
 *   FAILSYNC_AFTER=N  counted calls after the N-th fail (N=0: all of them).
 *   FAILSYNC_TRIGGER  a path: counted calls fail while this file exists.
 *   FAILSYNC_LOG      a file to append one line per intercepted call to:
 *                     "<function> <n> <pass|ok|EIO> <path>" (n: the counted call's
 *                     number, 0 when not counted).
 *
 * Once a call has failed every later counted call fails too, as a disk that reported an
 * I/O error would keep doing (and as Linux may forget dirty pages after a failed
 * writeback, "retrying the fsync" is not a recovery either).
 *
 * Build: gcc -shared -fPIC -O2 -o failsync.so failsync.c -ldl
 * (coord.testing._faults.build_failsync does this.)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_syncfs)(int);
static int (*real_sync_file_range)(int, off_t, off_t, unsigned int);
static const char *match;
static const char *trigger;
static long fail_after = -1;
static int log_fd = -1;
static long counted;
static int failed;

static void init(void) {
    real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    real_syncfs = (int (*)(int))dlsym(RTLD_NEXT, "syncfs");
    real_sync_file_range =
        (int (*)(int, off_t, off_t, unsigned int))dlsym(RTLD_NEXT, "sync_file_range");
    match = getenv("FAILSYNC_MATCH");
    if (match != NULL && *match == '\0')
        match = NULL;
    trigger = getenv("FAILSYNC_TRIGGER");
    if (trigger != NULL && *trigger == '\0')
        trigger = NULL;
    const char *after = getenv("FAILSYNC_AFTER");
    if (after != NULL && *after != '\0')
        fail_after = strtol(after, NULL, 10);
    const char *log = getenv("FAILSYNC_LOG");
    if (log != NULL && *log != '\0')
        log_fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

/* Decide for one call; returns 1 if it must fail. Logs the decision. */
static int decide(const char *function, int fd) {
    char link[64];
    char path[PATH_MAX];
    int saved = errno;
    pthread_once(&once, init);
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, path, sizeof path - 1);
    if (len < 0)
        len = 0;
    path[len] = '\0';
    int counts = match == NULL || strstr(path, match) != NULL;
    int fail = 0;
    long n = 0;
    pthread_mutex_lock(&lock);
    if (counts) {
        n = ++counted;
        if (failed || (fail_after >= 0 && n > fail_after) ||
            (trigger != NULL && access(trigger, F_OK) == 0))
            fail = failed = 1;
    }
    pthread_mutex_unlock(&lock);
    if (log_fd >= 0) {
        char line[PATH_MAX + 96];
        int size = snprintf(line, sizeof line, "%s %ld %s %s\n", function, n,
                            !counts ? "pass" : fail ? "EIO" : "ok", path);
        if (size > 0)
            (void)!write(log_fd, line, (size_t)size < sizeof line ? (size_t)size : sizeof line);
    }
    errno = saved;
    return fail;
}

int fsync(int fd) {
    if (decide("fsync", fd)) {
        errno = EIO;
        return -1;
    }
    return real_fsync(fd);
}

int fdatasync(int fd) {
    if (decide("fdatasync", fd)) {
        errno = EIO;
        return -1;
    }
    return real_fdatasync(fd);
}

int syncfs(int fd) {
    if (decide("syncfs", fd)) {
        errno = EIO;
        return -1;
    }
    return real_syncfs(fd);
}

int sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags) {
    if (decide("sync_file_range", fd)) {
        errno = EIO;
        return -1;
    }
    return real_sync_file_range(fd, offset, nbytes, flags);
}
