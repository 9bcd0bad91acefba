/* The benchmark receiver, in C: a callback-protocol endpoint that costs next to nothing.
 *
 *   cc -O2 -o receiver receiver.c && ./receiver PORT
 *
 *   GET /multiply?x=X&y=Y  -> {"status":"success","retval":X*Y}   (integers)
 *   GET /multiply?x=X&y=Y&delay_ms=D
 *                          -> the same answer, D milliseconds later (a slow endpoint)
 *   GET /health            -> {"status":"success","retval":"ok"}
 *   GET /stats             -> {"status":"success","retval":{"requests":N,"pending":P,"peak_pending":M,
 *                                                          "connections":C,"peak_connections":K}}
 *   GET /stats?reset=1     -> the same, then the two peaks start again from the current values
 *   anything else          -> 404 {"status":"failure","reason":"no such route"}
 *
 * Why C: on the 2-core bench machine every process shares two cores, so whatever the
 * receiver spends is taken from the client and worker being measured.  This loop costs
 * 10-30 us of CPU per request (measured), 2-6x less than the Node.js receiver.js, and the
 * urllib3 loop runs 4,600-7,400 calls/s against it (2,500-3,700 against Node).
 * bench.py compiles it with `cc -O2` into a temporary directory at each run.
 *
 * One thread, epoll, non-blocking sockets, HTTP/1.1 keep-alive, pipelining-safe.
 * A slow answer (delay_ms) never blocks the loop: it goes on a timer heap and the loop's
 * epoll_wait timeout is the earliest deadline, so thousands of slow requests wait at once
 * for no CPU; the connection stops being read until its answer is written (HTTP/1.1 answers
 * in order).  `pending` is how many answers wait right now, `peak_pending` the most that did
 * at once: how many calls a worker really had in flight.  The soft limit on open files is
 * raised to the hard one at start, for thousands of keep-alive connections.
 * A request body announced by Content-Length is skipped.  Written for the benchmark
 * (the clients are requests, urllib3, and the workers of the systems measured), not as a
 * general HTTP server: it reads a request line and the Content-Length header, no more.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 16384
#define MAXFD 65536

typedef struct { char buf[BUF]; size_t len; size_t skip; unsigned long long gen; int waiting; } conn_t;
static conn_t *conns[MAXFD];
static unsigned long long requests, generation;
static long pending, peak_pending, connections, peak_connections;
static volatile sig_atomic_t stop;

/* slow answers: a binary min-heap on the deadline; gen tells a reused fd from the connection that asked */
typedef struct { long long due_ns; int fd; unsigned long long gen; long long value; } timer_t_;
static timer_t_ *heap;
static size_t heap_len, heap_cap;

static void on_signal(int sig) { (void)sig; stop = 1; }

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void heap_push(timer_t_ t) {
  if (heap_len == heap_cap) {
    heap_cap = heap_cap ? heap_cap * 2 : 1024;
    heap = realloc(heap, heap_cap * sizeof *heap);
    if (!heap) { perror("realloc"); exit(1); }
  }
  size_t i = heap_len++;
  while (i > 0 && heap[(i - 1) / 2].due_ns > t.due_ns) { heap[i] = heap[(i - 1) / 2]; i = (i - 1) / 2; }
  heap[i] = t;
}

static timer_t_ heap_pop(void) {
  timer_t_ top = heap[0], last = heap[--heap_len];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= heap_len) break;
    if (c + 1 < heap_len && heap[c + 1].due_ns < heap[c].due_ns) c++;
    if (heap[c].due_ns >= last.due_ns) break;
    heap[i] = heap[c];
    i = c;
  }
  if (heap_len) heap[i] = last;
  return top;
}

static long long param(const char *q, const char *end, const char *name) {
  /* the integer value of "name=" in the query q..end, 0 if absent */
  size_t n = strlen(name);
  const char *p = q;
  while (p < end) {
    if ((size_t)(end - p) > n && memcmp(p, name, n) == 0 && p[n] == '=') return strtoll(p + n + 1, NULL, 10);
    while (p < end && *p != '&') p++;
    p++;
  }
  return 0;
}

static void respond(int fd, int code, const char *body) {
  char out[512];
  int n = snprintf(out, sizeof out,
                   "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                   "Connection: keep-alive\r\n\r\n%s",
                   code, code == 200 ? "OK" : "Not Found", strlen(body), body);
  ssize_t done = 0;
  while (done < n) { /* tiny answers: the socket buffer always has room, but be safe */
    ssize_t w = write(fd, out + done, n - done);
    if (w < 0) { if (errno == EAGAIN || errno == EINTR) continue; return; }
    done += w;
  }
}

static int handle(int fd, const char *req, const char *line_end) {
  /* answer one request; 1 if its answer was put on the timer heap instead (the connection waits) */
  char body[256];
  requests++;
  const char *sp = memchr(req, ' ', line_end - req);
  if (!sp) { respond(fd, 404, "{\"status\":\"failure\",\"reason\":\"bad request\"}"); return 0; }
  const char *path = sp + 1;
  const char *path_end = memchr(path, ' ', line_end - path);
  if (!path_end) path_end = line_end;
  const char *q = memchr(path, '?', path_end - path);
  const char *pend = q ? q : path_end;
  size_t plen = pend - path;
  if (plen == 9 && memcmp(path, "/multiply", 9) == 0) {
    long long x = q ? param(q + 1, path_end, "x") : 0, y = q ? param(q + 1, path_end, "y") : 0;
    long long delay = q ? param(q + 1, path_end, "delay_ms") : 0;
    if (delay > 0) {
      timer_t_ t = {.due_ns = now_ns() + delay * 1000000LL, .fd = fd, .gen = conns[fd]->gen, .value = x * y};
      heap_push(t);
      conns[fd]->waiting = 1;
      if (++pending > peak_pending) peak_pending = pending;
      return 1;
    }
    snprintf(body, sizeof body, "{\"status\":\"success\",\"retval\":%lld}", x * y);
    respond(fd, 200, body);
  } else if (plen == 7 && memcmp(path, "/health", 7) == 0) {
    respond(fd, 200, "{\"status\":\"success\",\"retval\":\"ok\"}");
  } else if (plen == 6 && memcmp(path, "/stats", 6) == 0) {
    snprintf(body, sizeof body,
             "{\"status\":\"success\",\"retval\":{\"requests\":%llu,\"pending\":%ld,\"peak_pending\":%ld,"
             "\"connections\":%ld,\"peak_connections\":%ld}}",
             requests, pending, peak_pending, connections, peak_connections);
    respond(fd, 200, body);
    if (q && param(q + 1, path_end, "reset")) peak_pending = pending, peak_connections = connections;
  } else {
    respond(fd, 404, "{\"status\":\"failure\",\"reason\":\"no such route\"}");
  }
  return 0;
}

static void drop(int ep, int fd) {
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
  free(conns[fd]);
  conns[fd] = NULL;
  connections--;
}

static int process(int ep, int fd) {
  /* every complete request in the buffer, up to the first slow one; 0 if the connection was dropped */
  conn_t *c = conns[fd];
  for (;;) {
    if (c->skip) { /* the rest of a body */
      size_t n = c->skip < c->len ? c->skip : c->len;
      memmove(c->buf, c->buf + n, c->len - n); c->len -= n; c->skip -= n;
      if (c->skip) break;
    }
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end) { if (c->len == BUF) { drop(ep, fd); return 0; } break; }
    char *line_end = memmem(c->buf, end - c->buf + 2, "\r\n", 2);
    size_t body_len = 0;
    for (char *h = line_end + 2; h < end; ) {
      char *he = memmem(h, end + 2 - h, "\r\n", 2);
      if (he - h > 15 && strncasecmp(h, "content-length:", 15) == 0) body_len = strtoul(h + 15, NULL, 10);
      h = he + 2;
    }
    int slow = handle(fd, c->buf, line_end);
    size_t used = end + 4 - c->buf;
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
    c->skip = body_len;
    if (slow) { /* answers go out in order: read nothing more until this one is written */
      struct epoll_event ev = {.events = 0, .data.fd = fd};
      epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
      break;
    }
    if (!c->skip && !c->len) break;
  }
  return 1;
}

static void on_readable(int ep, int fd) {
  conn_t *c = conns[fd];
  for (;;) {
    ssize_t r = read(fd, c->buf + c->len, BUF - c->len);
    if (r == 0) { drop(ep, fd); return; }
    if (r < 0) { if (errno == EAGAIN || errno == EWOULDBLOCK) break; if (errno == EINTR) continue; drop(ep, fd); return; }
    c->len += r;
    int drained = (size_t)r < BUF - (c->len - r); /* a short read: nothing more is waiting */
    if (!process(ep, fd) || c->waiting) return;
    /* level-triggered epoll reports the socket again if more arrives: no read to EAGAIN */
    if (drained) break;
  }
}

static void fire_timers(int ep) {
  /* write every slow answer whose time has come; its connection is read again */
  long long now = now_ns();
  char body[160];
  while (heap_len && heap[0].due_ns <= now) {
    timer_t_ t = heap_pop();
    pending--;
    conn_t *c = conns[t.fd];
    if (!c || c->gen != t.gen) continue; /* the connection that asked is gone */
    c->waiting = 0;
    snprintf(body, sizeof body, "{\"status\":\"success\",\"retval\":%lld}", t.value);
    respond(t.fd, 200, body);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = t.fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, t.fd, &ev);
    if (c->len) process(ep, t.fd); /* requests that arrived while it waited */
  }
}

static int next_timeout_ms(void) {
  if (!heap_len) return 500;
  long long wait = heap[0].due_ns - now_ns();
  if (wait <= 0) return 0;
  long long ms = (wait + 999999) / 1000000; /* rounded up: never early */
  return ms > 500 ? 500 : (int)ms;
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 8790;
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max > MAXFD ? MAXFD : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr *)&addr, sizeof addr) || listen(ls, 4096)) { perror("bind/listen"); return 1; }
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls}, evs[256];
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  printf("receiver listening on 127.0.0.1:%d\n", port);
  fflush(stdout);
  while (!stop) {
    int n = epoll_wait(ep, evs, 256, next_timeout_ms());
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == ls) {
        int cfd;
        while ((cfd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          if (cfd >= MAXFD) { close(cfd); continue; }
          setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conns[cfd] = calloc(1, sizeof(conn_t));
          conns[cfd]->gen = ++generation;
          if (++connections > peak_connections) peak_connections = connections;
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
          epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev);
        }
      } else if (conns[fd]) {
        if (conns[fd]->waiting) { /* not read while its answer waits: only a hang-up or error is reported */
          if (evs[i].events & (EPOLLHUP | EPOLLERR)) drop(ep, fd);
        } else {
          on_readable(ep, fd);
        }
      }
    }
    fire_timers(ep);
  }
  return 0;
}
