/*
 * http.h — the operator's HTTP endpoint (--metrics-addr): /metrics and
 * /healthz, served by libmicrohttpd on a thread of its own.
 *
 * HTTP is libmicrohttpd's (Debian's libmicrohttpd-dev): pgstream parses
 * no request. Its thread reads only the published snapshot of struct
 * metrics (ops/metrics.h), never the stream loop's state, and has the
 * process's signals blocked, so SIGTERM still interrupts the loop's poll.
 */
#ifndef PGSTREAM_HTTP_H
#define PGSTREAM_HTTP_H

#include "ops/metrics.h"
#include "util/err.h"

struct ops_http;

/* Check that addr is HOST:PORT (IPv6 as [ADDR]:PORT; port 0: any free
 * one), resolving nothing but numbers and names the resolver knows now.
 * -1 with *e set ("invalid value for --metrics-addr: ..."). */
int ops_http_check_addr(const char *addr, struct err *e);

/* Listen on addr and serve m (borrowed until ops_http_stop). NULL with *e
 * set when the address is taken, not this host's, or not allowed. */
struct ops_http *ops_http_start(const char *addr, struct metrics *m, struct err *e);

/* Stop serving and close the socket; waits for a request in progress.
 * Accepts NULL. */
void ops_http_stop(struct ops_http *h);

#endif
