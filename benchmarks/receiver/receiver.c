/* The benchmark receiver, in C: a callback-protocol endpoint that costs next to nothing.
 *
 *   cc -O2 -o receiver receiver.c && ./receiver PORT
 *
 *   GET /multiply?x=X&y=Y  -> {"status":"success","retval":X*Y}   (integers)
 *   GET /health            -> {"status":"success","retval":"ok"}
 *   GET /stats             -> {"status":"success","retval":{"requests":N}}
 *   anything else          -> 404 {"status":"failure","reason":"no such route"}
 *
 * Why C: on the 2-core bench machine every process shares two cores, so whatever the
 * receiver spends is taken from the client and worker being measured.  This loop costs
 * 10-30 us of CPU per request (measured), 2-6x less than the Node.js receiver.js, and the
 * urllib3 loop runs 4,600-7,400 calls/s against it (2,500-3,700 against Node).
 * bench.py compiles it with `cc -O2` into a temporary directory at each run.
 *
 * One thread, epoll, non-blocking sockets, HTTP/1.1 keep-alive, pipelining-safe.
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
#include <sys/socket.h>
#include <unistd.h>

#define BUF 16384
#define MAXFD 65536

typedef struct { char buf[BUF]; size_t len; size_t skip; } conn_t;
static conn_t *conns[MAXFD];
static unsigned long long requests;
static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

static long long param(const char *q, const char *end, char name) {
  /* the integer value of "name=" in the query q..end, 0 if absent */
  const char *p = q;
  while (p < end) {
    if (p[0] == name && p + 1 < end && p[1] == '=') return strtoll(p + 2, NULL, 10);
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

static void handle(int fd, const char *req, const char *line_end) {
  char body[160];
  requests++;
  const char *sp = memchr(req, ' ', line_end - req);
  if (!sp) { respond(fd, 404, "{\"status\":\"failure\",\"reason\":\"bad request\"}"); return; }
  const char *path = sp + 1;
  const char *path_end = memchr(path, ' ', line_end - path);
  if (!path_end) path_end = line_end;
  const char *q = memchr(path, '?', path_end - path);
  const char *pend = q ? q : path_end;
  size_t plen = pend - path;
  if (plen == 9 && memcmp(path, "/multiply", 9) == 0) {
    long long x = q ? param(q + 1, path_end, 'x') : 0, y = q ? param(q + 1, path_end, 'y') : 0;
    snprintf(body, sizeof body, "{\"status\":\"success\",\"retval\":%lld}", x * y);
    respond(fd, 200, body);
  } else if (plen == 7 && memcmp(path, "/health", 7) == 0) {
    respond(fd, 200, "{\"status\":\"success\",\"retval\":\"ok\"}");
  } else if (plen == 6 && memcmp(path, "/stats", 6) == 0) {
    snprintf(body, sizeof body, "{\"status\":\"success\",\"retval\":{\"requests\":%llu}}", requests);
    respond(fd, 200, body);
  } else {
    respond(fd, 404, "{\"status\":\"failure\",\"reason\":\"no such route\"}");
  }
}

static void drop(int ep, int fd) {
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
  free(conns[fd]);
  conns[fd] = NULL;
}

static void on_readable(int ep, int fd) {
  conn_t *c = conns[fd];
  for (;;) {
    ssize_t r = read(fd, c->buf + c->len, BUF - c->len);
    if (r == 0) { drop(ep, fd); return; }
    if (r < 0) { if (errno == EAGAIN || errno == EWOULDBLOCK) break; if (errno == EINTR) continue; drop(ep, fd); return; }
    c->len += r;
    int drained = (size_t)r < BUF - (c->len - r); /* a short read: nothing more is waiting */
    for (;;) { /* every complete request in the buffer */
      if (c->skip) { /* the rest of a body */
        size_t n = c->skip < c->len ? c->skip : c->len;
        memmove(c->buf, c->buf + n, c->len - n); c->len -= n; c->skip -= n;
        if (c->skip) break;
      }
      char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
      if (!end) { if (c->len == BUF) { drop(ep, fd); return; } break; }
      char *line_end = memmem(c->buf, end - c->buf + 2, "\r\n", 2);
      size_t body_len = 0;
      for (char *h = line_end + 2; h < end; ) {
        char *he = memmem(h, end + 2 - h, "\r\n", 2);
        if (he - h > 15 && strncasecmp(h, "content-length:", 15) == 0) body_len = strtoul(h + 15, NULL, 10);
        h = he + 2;
      }
      handle(fd, c->buf, line_end);
      size_t used = end + 4 - c->buf;
      memmove(c->buf, c->buf + used, c->len - used);
      c->len -= used;
      c->skip = body_len;
      if (!c->skip && !c->len) break;
    }
    /* level-triggered epoll reports the socket again if more arrives: no read to EAGAIN */
    if (drained) break;
  }
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 8790;
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr *)&addr, sizeof addr) || listen(ls, 1024)) { perror("bind/listen"); return 1; }
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls}, evs[256];
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  printf("receiver listening on 127.0.0.1:%d\n", port);
  fflush(stdout);
  while (!stop) {
    int n = epoll_wait(ep, evs, 256, 500);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == ls) {
        int cfd;
        while ((cfd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          if (cfd >= MAXFD) { close(cfd); continue; }
          setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conns[cfd] = calloc(1, sizeof(conn_t));
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
          epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev);
        }
      } else if (conns[fd]) {
        on_readable(ep, fd);
      }
    }
  }
  return 0;
}
