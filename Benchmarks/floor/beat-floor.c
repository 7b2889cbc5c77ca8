// The least CPU a beat can cost on this machine: the system calls of one beat of kvmha's writer — our record and
// CloudStack's hb-<ip> file, each replaced atomically (exclusive create, write, [fsync for the record], close,
// rename) — done by a C loop that wakes every INTERVAL_US on CLOCK_MONOTONIC, as the daemon does, with nothing
// else: no encoding, no thread hand-off, no health bookkeeping. Also the same system calls back to back (warm
// caches, no wake-up), to show what the periodic wake-up adds.
//
//   gcc -O2 -o /tmp/beat-floor Benchmarks/floor/beat-floor.c && /tmp/beat-floor /dev/shm/kvmha-floor 4000 2000
//
// Arguments: DIR BEATS INTERVAL_US. CPU is this process's user + system time (getrusage) divided by the beats.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double cpu_us(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6 + usage.ru_utime.tv_usec + usage.ru_stime.tv_usec;
}

static int replace(int folder, const char *temporary, const char *name, const char *bytes, size_t count, int durable) {
    int fd = openat(folder, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    if (write(fd, bytes, count) != (ssize_t)count || (durable && fsync(fd) != 0)) {
        close(fd);
        return -1;
    }
    if (close(fd) != 0) return -1;
    return renameat(folder, temporary, folder, name);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s DIR BEATS INTERVAL_US\n", argv[0]);
        return 64;
    }
    const char *dir = argv[1];
    int beats = atoi(argv[2]);
    long interval_ns = atol(argv[3]) * 1000L;
    char path[4096];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/KVMHA", dir);
    mkdir(path, 0755);
    int ha = open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    snprintf(path, sizeof path, "%s/KVMHA/kvmha", dir);
    mkdir(path, 0755);
    int records = open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (ha < 0 || records < 0) {
        perror(dir);
        return 1;
    }
    char record[600];  // a record of a host without VMs is ~500 bytes
    memset(record, 'x', sizeof record);
    const char *stamp = "1764845000\n";

    for (int periodic = 0; periodic < 2; periodic++) {
        struct timespec next;
        clock_gettime(CLOCK_MONOTONIC, &next);
        double start = cpu_us();
        for (int beat = 0; beat < beats; beat++) {
            if (periodic) {
                next.tv_nsec += interval_ns;
                while (next.tv_nsec >= 1000000000L) {
                    next.tv_nsec -= 1000000000L;
                    next.tv_sec++;
                }
                clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
            }
            if (replace(records, ".tmp-record", "10.0.0.1", record, sizeof record, 1) != 0 ||
                replace(ha, ".tmp-hb", "hb-10.0.0.1", stamp, strlen(stamp), 0) != 0) {
                perror("beat");
                return 1;
            }
        }
        printf("%s: %.1f µs CPU per beat\n", periodic ? "every interval (as the daemon)" : "back to back",
               (cpu_us() - start) / beats);
    }
    return 0;
}
