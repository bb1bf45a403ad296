/* The sampler's ticks: a native thread that wakes at the sampling rate, reads the worker's
 * /proc/<pid>/stat at every tick and the host's counters (/proc/stat's cpu line, /proc/meminfo, this
 * process's CPU clock) at every host_every-th, and keeps them as read in a ring the Python sampler drains.
 *
 * Why native: under a busy worker a Python thread's wake-up alone costs ~110 us of CPU, a C thread's
 * ~40 us (docs/performance.md, the sampler); at 50 Hz that is the difference between 0.7% and 0.25%
 * of a core. The thread runs inside the controller's process, so its CPU is the controller's own and
 * never counted as another process's. Built by edgelaw.measure.ticker with the system's C compiler.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CPU_FIELDS 10 /* user nice system idle iowait irq softirq steal guest guest_nice */

typedef struct {
    double t;            /* CLOCK_MONOTONIC seconds, the clock of Python's time.monotonic() */
    long long cpu_ticks; /* utime + stime in clock ticks; -1: no process or it has exited */
    long long rss_pages;
    /* the host's, on every host_every-th tick only (host = 1) */
    long long host;
    double t_wall;       /* CLOCK_REALTIME, Python's time.time() */
    double self_cpu_s;   /* CLOCK_PROCESS_CPUTIME_ID, Python's time.process_time() */
    long long cpu[CPU_FIELDS]; /* -1 where the kernel has no such field */
    long long mem_total_kb, mem_available_kb; /* -1 if absent (a kernel before 3.14) */
} record;

typedef struct {
    pthread_t thread;
    long period_ns;
    long host_every;
    int stat_fd, meminfo_fd;
    atomic_int fd;       /* the worker's /proc/<pid>/stat, -1 for none; swapped by ticker_attach */
    atomic_int stopping;
    record *ring;
    long capacity;
    atomic_long head;    /* records written (the thread) */
    atomic_long tail;    /* records taken (ticker_drain) */
    atomic_long dropped; /* ticks lost because the ring was full */
    atomic_llong thread_cpu_ns;
} ticker;

static double now(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Fields 14, 15 and 24 of proc(5), counted after the command name, which may hold spaces and ')'. */
static void parse_stat(const char *buf, long long *cpu, long long *rss) {
    const char *p = strrchr(buf, ')');
    *cpu = -1;
    *rss = -1;
    if (!p) return;
    p += 2;
    long long utime = 0, stime = 0;
    for (int field = 0; field <= 21 && *p; field++) {
        if (field == 11) utime = strtoll(p, NULL, 10);
        if (field == 12) stime = strtoll(p, NULL, 10);
        if (field == 21) {
            *rss = strtoll(p, NULL, 10);
            *cpu = utime + stime;
            return;
        }
        while (*p && *p != ' ') p++;
        while (*p == ' ') p++;
    }
}

static long long meminfo_kb(const char *buf, const char *key) {
    const char *p = strstr(buf, key);
    return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

static void read_host(ticker *tk, record *r) {
    char buf[1024];
    r->host = 1;
    r->t_wall = now(CLOCK_REALTIME);
    for (int i = 0; i < CPU_FIELDS; i++) r->cpu[i] = -1;
    ssize_t n = pread(tk->stat_fd, buf, sizeof buf - 1, 0);
    if (n > 0) {
        buf[n] = 0;
        char *p = buf + 3; /* "cpu  ..." */
        for (int i = 0; i < CPU_FIELDS; i++) {
            char *end;
            long long v = strtoll(p, &end, 10);
            if (end == p || *p == '\n') break;
            r->cpu[i] = v;
            p = end;
        }
    }
    r->mem_total_kb = r->mem_available_kb = -1;
    n = pread(tk->meminfo_fd, buf, sizeof buf - 1, 0);
    if (n > 0) {
        buf[n] = 0;
        r->mem_total_kb = meminfo_kb(buf, "MemTotal:");
        r->mem_available_kb = meminfo_kb(buf, "MemAvailable:");
    }
    r->self_cpu_s = now(CLOCK_PROCESS_CPUTIME_ID);
}

static void *loop(void *arg) {
    ticker *tk = arg;
    char buf[1024];
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (long tick = 0; !atomic_load(&tk->stopping); tick++) {
        record r = {0};
        r.t = now(CLOCK_MONOTONIC);
        r.cpu_ticks = r.rss_pages = -1;
        int fd = atomic_load(&tk->fd);
        if (fd >= 0) {
            ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
            if (n > 0) {
                buf[n] = 0;
                parse_stat(buf, &r.cpu_ticks, &r.rss_pages);
            }
        }
        if (tick % tk->host_every == 0) read_host(tk, &r);
        long head = atomic_load(&tk->head);
        if (head - atomic_load(&tk->tail) < tk->capacity) {
            tk->ring[head % tk->capacity] = r;
            atomic_store(&tk->head, head + 1);
        } else {
            atomic_fetch_add(&tk->dropped, 1);
        }
        struct timespec cpu;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
        atomic_store(&tk->thread_cpu_ns, (long long)cpu.tv_sec * 1000000000LL + cpu.tv_nsec);
        next.tv_nsec += tk->period_ns;
        while (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec++;
        }
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec > next.tv_sec || (t.tv_sec == next.tv_sec && t.tv_nsec > next.tv_nsec))
            next = t; /* fell behind: skip the missed ticks instead of bursting */
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {
        }
    }
    return NULL;
}

ticker *ticker_start(long period_ns, long host_every, long capacity, int stat_fd, int meminfo_fd, int fd) {
    ticker *tk = calloc(1, sizeof *tk);
    if (!tk) return NULL;
    tk->host_every = host_every;
    tk->stat_fd = stat_fd;
    tk->meminfo_fd = meminfo_fd;
    tk->ring = calloc(capacity, sizeof(record));
    if (!tk->ring) {
        free(tk);
        return NULL;
    }
    tk->period_ns = period_ns;
    tk->capacity = capacity;
    atomic_init(&tk->fd, fd);
    if (pthread_create(&tk->thread, NULL, loop, tk) != 0) {
        free(tk->ring);
        free(tk);
        return NULL;
    }
    return tk;
}

/* Follow another descriptor (-1: none); returns the one it replaces, which the caller may close only
 * after a later tick has begun (a read in flight may still use it). */
int ticker_attach(ticker *tk, int fd) { return atomic_exchange(&tk->fd, fd); }

/* Copies up to `max` records, oldest first, into `out`; returns how many. One caller at a time. */
long ticker_drain(ticker *tk, record *out, long max) {
    long tail = atomic_load(&tk->tail), head = atomic_load(&tk->head), n = 0;
    for (; tail + n < head && n < max; n++) out[n] = tk->ring[(tail + n) % tk->capacity];
    atomic_store(&tk->tail, tail + n);
    return n;
}

long ticker_record_size(void) { return sizeof(record); }

long ticker_dropped(ticker *tk) { return atomic_load(&tk->dropped); }

double ticker_thread_cpu_s(ticker *tk) { return atomic_load(&tk->thread_cpu_ns) * 1e-9; }

void ticker_stop(ticker *tk) {
    atomic_store(&tk->stopping, 1);
    pthread_join(tk->thread, NULL);
    free(tk->ring);
    free(tk);
}
