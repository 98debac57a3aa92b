/*
 * http.c — /metrics and /healthz over libmicrohttpd; see http.h.
 *
 * pgstream binds the listening socket itself, so an address in use or not
 * this host's is one clear line at startup (MHD_start_daemon would only
 * say NULL), then hands it to libmicrohttpd, which does all the HTTP.
 */
#include "ops/http.h"

#include <ctype.h>
#include <errno.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "ops/page.h"
#include "util/log.h"

/* Scrapers are few: bound what a misbehaving client can hold. */
#define HTTP_MAX_CONNECTIONS 16
#define HTTP_IDLE_TIMEOUT_S  10

struct ops_http {
	struct MHD_Daemon *mhd;
	int fd;
	struct metrics *m;
};

/* Split "HOST:PORT" or "[V6]:PORT" into host and port; false if it is not
 * that shape. */
static bool split_addr(const char *addr, char *host, size_t hostsz, char *port, size_t portsz)
{
	const char *colon = strrchr(addr, ':');
	const char *h = addr;
	size_t hlen;

	if (colon == NULL || colon == addr)
		return false;
	hlen = (size_t)(colon - addr);
	if (addr[0] == '[') {
		if (hlen < 3 || colon[-1] != ']')
			return false;
		h = addr + 1;
		hlen -= 2;
	} else if (memchr(addr, ':', hlen)) {
		return false; /* a bare IPv6 address: which colon is the port's? */
	}
	if (hlen >= hostsz || strlen(colon + 1) >= portsz || colon[1] == '\0')
		return false;
	for (const char *p = colon + 1; *p; p++)
		if (!isdigit((unsigned char)*p))
			return false;
	if (strtol(colon + 1, NULL, 10) > 65535)
		return false;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	snprintf(port, portsz, "%s", colon + 1);
	return true;
}

static int resolve(const char *addr, struct addrinfo **res, struct err *e)
{
	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	char host[256], port[8];
	int rc;

	if (!split_addr(addr, host, sizeof host, port, sizeof port))
		return err_set(e,
		               "invalid value for --metrics-addr: \"%.200s\" (expected HOST:PORT, "
		               "e.g. 127.0.0.1:9187 or [::1]:9187)",
		               addr);
	rc = getaddrinfo(host, port, &hints, res);
	if (rc != 0)
		return err_set(e, "invalid value for --metrics-addr: \"%.200s\" (%s)", addr,
		               gai_strerror(rc));
	return 0;
}

int ops_http_check_addr(const char *addr, struct err *e)
{
	struct addrinfo *res;

	if (resolve(addr, &res, e) < 0)
		return -1;
	freeaddrinfo(res);
	return 0;
}

static int listen_on(const char *addr, struct err *e)
{
	struct addrinfo *res;
	int fd, one = 1;

	if (resolve(addr, &res, e) < 0)
		return -1;
	fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
	if (fd < 0) {
		err_set(e, "could not listen on --metrics-addr %s: %s", addr, strerror(errno));
		freeaddrinfo(res);
		return -1;
	}
	/* A restart must not wait for the last run's TIME_WAIT connections. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, HTTP_MAX_CONNECTIONS) < 0) {
		err_set(e, "could not listen on --metrics-addr %s: %s", addr, strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

/* The address as bound (port 0 picks one), for the log and for tests. */
static void log_listening(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char host[INET6_ADDRSTRLEN], port[8];

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, port, sizeof port,
	                NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return;
	log_info(ss.ss_family == AF_INET6
	             ? "metrics on http://[%s]:%s/metrics, health on /healthz, status page on /"
	             : "metrics on http://%s:%s/metrics, health on /healthz, status page on /",
	         host, port);
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, struct buf *body,
                               const char *type)
{
	struct MHD_Response *r;
	enum MHD_Result rc;

	if (!buf_ok(body)) {
		buf_clear(body);
		buf_puts(body, "out of memory\n");
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		type = "text/plain; charset=utf-8";
	}
	r = MHD_create_response_from_buffer(body->len, body->data ? body->data : (char *)"",
	                                    MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	struct ops_http *h = cls;
	struct buf body;
	enum MHD_Result rc;
	unsigned status = MHD_HTTP_OK;
	const char *type = "text/plain; charset=utf-8";

	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;
	buf_init(&body, 0);
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
		buf_puts(&body, "only GET and HEAD\n");
	} else if (strcmp(url, "/metrics") == 0) {
		metrics_render(h->m, &body);
		type = "text/plain; version=0.0.4; charset=utf-8";
	} else if (strcmp(url, "/") == 0) {
		buf_puts(&body, page_status_html());
		type = "text/html; charset=utf-8";
	} else if (strcmp(url, "/status.json") == 0) {
		metrics_render_status(h->m, &body);
		type = "application/json";
	} else if (strcmp(url, "/healthz") == 0) {
		if (!metrics_health(h->m, &body))
			status = MHD_HTTP_SERVICE_UNAVAILABLE;
	} else if (strcmp(url, "/livez") == 0) {
		if (!metrics_live(h->m, &body))
			status = MHD_HTTP_SERVICE_UNAVAILABLE;
	} else {
		status = MHD_HTTP_NOT_FOUND;
		buf_puts(&body, "not found: try /, /metrics, /healthz, /livez or /status.json\n");
	}
	rc = respond(conn, status, &body, type);
	buf_reset(&body);
	return rc;
}

struct ops_http *ops_http_start(const char *addr, struct metrics *m, struct err *e)
{
	struct ops_http *h = calloc(1, sizeof *h);
	sigset_t block, old;

	if (h == NULL)
		return err_set(e, "could not start the metrics endpoint: out of memory"), NULL;
	h->m = m;
	if (metrics_keep_history(m, e) < 0) {
		free(h);
		return NULL;
	}
	h->fd = listen_on(addr, e);
	if (h->fd < 0) {
		free(h);
		return NULL;
	}
	/* The server's thread inherits this mask: signals go to the stream
	 * loop, whose poll they must interrupt. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	h->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC, 0,
	                          NULL, NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET, h->fd,
	                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNECTIONS,
	                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_TIMEOUT_S,
	                          MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (h->mhd == NULL) {
		err_set(e, "could not start the metrics endpoint on %s", addr);
		close(h->fd);
		free(h);
		return NULL;
	}
	log_listening(h->fd);
	return h;
}

void ops_http_stop(struct ops_http *h)
{
	MHD_socket fd;

	if (h == NULL)
		return;
	/* Quiesced, the socket is ours again to close (MHD_stop_daemon would
	 * close it otherwise: closing it here too could close another's). */
	fd = MHD_quiesce_daemon(h->mhd);
	MHD_stop_daemon(h->mhd);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
	free(h);
}
