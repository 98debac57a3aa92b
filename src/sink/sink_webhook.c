/*
 * sink_webhook.c — batches of events POSTed to an HTTP endpoint with
 * libcurl's multi interface, at least once.
 *
 * Events collect in batches (s->out holds their bytes; --webhook-batch-size
 * events, --webhook-batch-bytes bytes, --webhook-linger-ms after the first
 * one while no request is in flight). A batch is one POST: NDJSON (each
 * event's JSON line) or one JSON array, with an Idempotency-Key made of the
 * positions of its first and last events and, given a secret, an HMAC-SHA-256
 * signature of the body. It counts as delivered on a 2xx reply, and only
 * then are its events confirmed, so Postgres hears of an LSN only after
 * every batch up to it had its 2xx.
 *
 * One request at a time. A receiver then sees batches in order, even
 * across retries: with several in flight, a batch retried after a 500 would
 * land after the ones sent behind it, and a receiver handling requests
 * concurrently could apply them out of order anyway. Throughput comes from
 * the batch size instead, and the next batch fills while a request is out.
 * When a full batch waits behind the one in flight, the sink is blocked:
 * the daemon stops decoding (memory stays at about two batches) and keeps
 * its Postgres connection alive.
 *
 * Failures: a network error, a timeout, 408, 429 and 5xx are retried
 * without limit, the same body with the same key and signature, after an
 * exponential backoff with jitter (100 ms doubling to
 * --webhook-retry-max-delay), or after the reply's Retry-After. Any other
 * status (3xx, 4xx) stops pgstream: every later call returns one line with
 * the status and the start of the reply, and nothing at or after the
 * batch is confirmed. A TLS certificate that does not verify stops it too.
 *
 * The loop never waits on a request: curl's sockets and timer are handed to
 * the daemon's poll (adjust_pollset / process, through curl's socket and
 * timer callbacks), and while events keep coming a zero-timeout look at
 * the sockets every WEBHOOK_DRIVE_EVERY events keeps the request moving.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sink/sink_int.h"
#include "util/log.h"
#include "util/lsn.h"

/* --sink webhook's settings: its options' values (WEBHOOK_OPTIONS), with
 * the prefix every sink shares. */
struct sink_webhook_config {
	const char *url;
	const char *secret;  /* HMAC-SHA-256 key of the signature header; NULL: none */
	const char *headers; /* "Name: value" lines added to every request, or NULL */
	const char *prefix;  /* first part of every Idempotency-Key */
	const char *body;    /* "ndjson" (NULL) or "array" */
	int batch_events;    /* a batch closes at this many events, */
	int batch_bytes;     /* ... or before it would pass this many bytes, */
	int linger_ms;       /* ... or this long after its first event */
	int timeout_ms;      /* one request, connection included */
	int retry_max_ms;    /* cap of the backoff between retries */
};

#define W(field) offsetof(struct sink_webhook_config, field)

static const struct sink_option WEBHOOK_OPTIONS[] = {
    {"webhook-url", "WEBHOOK_URL", SINK_OPT_STRING, W(url), "URL",
     "with --sink webhook: where batches of events are POSTed (http:// or https://)", NULL, NULL},
    {"webhook-secret", "WEBHOOK_SECRET", SINK_OPT_STRING, W(secret), "SECRET",
     "HMAC-SHA-256 key: X-Pgstream-Signature: sha256=HEX over each body (prefer the "
     "environment)",
     NULL, NULL},
    {"webhook-header", "WEBHOOK_HEADERS", SINK_OPT_LINES, W(headers), "'NAME: VALUE'",
     "an HTTP header of every request, repeatable (environment: one per line)", NULL, NULL},
    {"webhook-body", "WEBHOOK_BODY", SINK_OPT_STRING, W(body), "ndjson|array",
     "a batch as one JSON line per event (default) or as one JSON array", NULL, NULL},
    {"webhook-batch-size", "WEBHOOK_BATCH_SIZE", SINK_OPT_COUNT, W(batch_events), "N",
     "events per request at most (default 1000)", "1000", NULL},
    {"webhook-batch-bytes", "WEBHOOK_BATCH_BYTES", SINK_OPT_COUNT, W(batch_bytes), "N",
     "bytes per request at most, unless one event is larger (default 1048576)", "1048576", NULL},
    {"webhook-linger-ms", "WEBHOOK_LINGER_MS", SINK_OPT_COUNT, W(linger_ms), "MS",
     "how long a batch waits for more events while no request is in flight (default 5)", "5", NULL},
    {"webhook-timeout", "WEBHOOK_TIMEOUT", SINK_OPT_SECONDS, W(timeout_ms), "SECONDS",
     "a request not answered in this long is retried (default 30)", "30", NULL},
    {"webhook-retry-max-delay", "WEBHOOK_RETRY_MAX_DELAY", SINK_OPT_SECONDS, W(retry_max_ms),
     "SECONDS", "cap of the exponential retry backoff (default 30)", "30", NULL},
    {0},
};

/* Closed batches that may wait behind the request in flight; more arrive
 * only while the daemon finishes a message after being told to stop. */
#define WEBHOOK_QUEUE 16
/* curl's sockets we track (one request: a connection, a second address
 * tried in parallel, the resolver's wakeup). */
#define WEBHOOK_SOCKS 8
/* Bytes of a refusal's reply quoted in the error line. */
#define WEBHOOK_REPLY_MAX        200
#define WEBHOOK_BACKOFF_FIRST_MS 100
/* A Retry-After beyond this is taken as this. */
#define WEBHOOK_RETRY_AFTER_MAX_MS (3600 * 1000)
/* How long sink_open waits for a connection to the endpoint. */
#define WEBHOOK_CONNECT_TIMEOUT_MS 10000
/* While events keep coming, look at the sockets every this many. */
#define WEBHOOK_DRIVE_EVERY 64
/* An event's position: a key is two of them plus the prefix. */
#define POS_STR_MAX (2 * LSN_STR_MAX + 16)

struct pos {
	uint64_t commit_lsn, lsn;
	uint32_t ord; /* events before it at the same position (one TRUNCATE) */
};

struct batch {
	size_t bytes; /* of s->out, after the batches before it */
	uint32_t events;
	uint64_t last_seq;
	struct pos first, last;
	int64_t opened_ms; /* its first event's arrival */
};

struct sock {
	curl_socket_t fd;
	short events; /* POLLIN / POLLOUT */
};

struct webhook_sink {
	CURLM *multi;
	CURL *easy;
	bool global; /* curl_global_init done */
	struct curl_slist *headers;
	char *url, *prefix, *where; /* where: scheme://host:port, for messages */
	char *secret;
	char *user_headers; /* "Name: value" lines, or NULL */
	bool array;
	int batch_events, batch_bytes, linger_ms, retry_max_ms;

	/* s->out: the closed batches' bytes, oldest first, then the open one's. */
	struct batch closed[WEBHOOK_QUEUE];
	unsigned head, nclosed;
	size_t closed_bytes;
	struct batch open; /* events == 0: none */
	struct pos prev;   /* the last event's, for ord */
	bool have_prev;

	/* The request: one batch, sent until it has its 2xx. */
	struct buf body;
	struct batch inflight;
	bool have_inflight;
	bool running;      /* the easy handle is in the multi */
	int64_t retry_at;  /* not running: when to send it again */
	unsigned attempts; /* failed so far */
	char key[2 * POS_STR_MAX + 64];
	char reply[WEBHOOK_REPLY_MAX + 1];
	size_t reply_len;
	char errbuf[CURL_ERROR_SIZE];

	struct sock socks[WEBHOOK_SOCKS];
	unsigned nsocks;
	int64_t timer_at; /* curl's timeout, or -1 */
	unsigned since_drive;
	uint64_t rng;

	struct sink_failure f; /* the first failure that will not pass */
};

/* ---- configuration ------------------------------------------------------ */

/* The URL's scheme://host:port (no user, password, path or query: they
 * may hold secrets) into *where. */
static int parse_url(const char *url, char **where, struct err *e)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	CURLUcode uc;
	int rc = -1;

	if (u == NULL)
		return err_set(e, "could not parse --webhook-url: out of memory");
	uc = curl_url_set(u, CURLUPART_URL, url, 0);
	if (uc != CURLUE_OK) {
		err_set(e,
		        "invalid value for --webhook-url: %s (expected http://HOST[:PORT]/PATH "
		        "or https://...)",
		        curl_url_strerror(uc));
		goto out;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
		err_set(e,
		        "invalid value for --webhook-url: scheme %s (expected http:// or https://)",
		        scheme ? scheme : "missing");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || *host == '\0') {
		err_set(e, "invalid value for --webhook-url: no host");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
		err_set(e, "invalid value for --webhook-url: bad port");
		goto out;
	}
	if (where) {
		size_t n = strlen(scheme) + strlen(host) + strlen(port) + 8;

		*where = malloc(n);
		if (*where == NULL) {
			err_set(e, "could not parse --webhook-url: out of memory");
			goto out;
		}
		snprintf(*where, n, "%s://%s:%s", scheme, host, port);
	}
	rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return rc;
}

/* Headers pgstream sets itself (or curl does), which a user may not. */
static const char *const MANAGED[] = {
    "content-type",
    "content-length",
    "idempotency-key",
    "x-pgstream-signature",
    "pgstream-events",
    "expect",
    "host",
    "transfer-encoding",
};

/* Each --webhook-header line: "Name: value", a token for a name, no
 * control characters, not one of pgstream's own. */
static int check_headers(const char *lines, struct err *e)
{
	for (const char *p = lines; p && *p;) {
		size_t n = strcspn(p, "\n"), name = strcspn(p, ":\n");
		char lower[64];

		if (name == 0 || name >= n || name >= sizeof lower)
			return err_set(e,
			               "invalid value for --webhook-header: \"%.*s\" (expected "
			               "'NAME: VALUE')",
			               (int)(n < 60 ? n : 60), p);
		for (size_t i = 0; i < name; i++) {
			unsigned char c = (unsigned char)p[i];

			if (c <= 0x20 || c >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", c))
				return err_set(
				    e,
				    "invalid value for --webhook-header: \"%.*s\" is not a "
				    "header name",
				    (int)name, p);
			lower[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
		}
		lower[name] = '\0';
		for (size_t i = name + 1; i < n; i++)
			if ((unsigned char)p[i] < 0x20 && p[i] != '\t')
				return err_set(e,
				               "invalid value for --webhook-header %s: a control "
				               "character in the value",
				               lower);
		for (size_t i = 0; i < sizeof MANAGED / sizeof MANAGED[0]; i++)
			if (strcmp(lower, MANAGED[i]) == 0)
				return err_set(
				    e,
				    "invalid value for --webhook-header: %.*s is pgstream's "
				    "to set",
				    (int)name, p);
		p += n + (p[n] == '\n');
	}
	return 0;
}

static int webhook_check_config(const struct sink_config *cfg, void *settings, struct err *e)
{
	struct sink_webhook_config *w = settings;

	w->prefix = cfg->prefix;

	if (w->url == NULL)
		return err_set(e, "invalid options: --sink webhook needs --webhook-url URL (or "
		                  "WEBHOOK_URL)");
	if (parse_url(w->url, NULL, e) < 0)
		return -1;
	if (w->body && strcmp(w->body, "ndjson") != 0 && strcmp(w->body, "array") != 0)
		return err_set(e,
		               "invalid value for --webhook-body: \"%.40s\" (expected ndjson or "
		               "array)",
		               w->body);
	if (check_headers(w->headers, e) < 0)
		return -1;
	if (w->batch_events < 1)
		return err_set(e, "invalid value for --webhook-batch-size: must be at least 1");
	if (w->batch_bytes < 1)
		return err_set(e, "invalid value for --webhook-batch-bytes: must be at least 1");
	if (w->linger_ms > 60000)
		return err_set(e, "invalid value for --webhook-linger-ms: at most 60000");
	return 0;
}

/* ---- small helpers -------------------------------------------------------- */

/* xorshift64*: jitter needs no more. */
static uint64_t rnd(struct webhook_sink *k)
{
	k->rng ^= k->rng >> 12;
	k->rng ^= k->rng << 25;
	k->rng ^= k->rng >> 27;
	return k->rng * 2685821657736338717ULL;
}

static int pos_format(const struct pos *p, char *out)
{
	int n = lsn_format(p->commit_lsn, out);

	out[n++] = ':';
	n += lsn_format(p->lsn, out + n);
	if (p->ord)
		n += snprintf(out + n, POS_STR_MAX - (size_t)n, ".%" PRIu32, p->ord);
	return n;
}

/* Text quoted in an error line: printable ASCII, the rest as '?'. */
static void quote_reply(const char *in, size_t len, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 1 < cap; i++)
		out[o++] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : (in[i] == '\n' ? ' ' : '?');
	out[o] = '\0';
}

/* ---- curl's sockets and timer -------------------------------------------- */

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct webhook_sink *k = userp;
	unsigned i;

	(void)easy;
	(void)socketp;
	for (i = 0; i < k->nsocks && k->socks[i].fd != fd; i++)
		;
	if (what == CURL_POLL_REMOVE) {
		if (i < k->nsocks)
			k->socks[i] = k->socks[--k->nsocks];
		return 0;
	}
	if (i == k->nsocks) {
		if (k->nsocks == WEBHOOK_SOCKS)
			return -1; /* curl fails the transfer: retried */
		k->nsocks++;
	}
	k->socks[i].fd = fd;
	k->socks[i].events =
	    (short)((what & CURL_POLL_IN ? POLLIN : 0) | (what & CURL_POLL_OUT ? POLLOUT : 0));
	return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct webhook_sink *k = userp;

	(void)multi;
	k->timer_at = timeout_ms < 0 ? -1 : clock_ms() + timeout_ms;
	return 0;
}

static size_t on_reply(char *data, size_t size, size_t n, void *userp)
{
	struct webhook_sink *k = userp;
	size_t len = size * n, room = WEBHOOK_REPLY_MAX - k->reply_len;

	if (room) {
		size_t take = len < room ? len : room;

		memcpy(k->reply + k->reply_len, data, take);
		k->reply_len += take;
	}
	return len; /* the rest is read and dropped */
}

/* ---- batches --------------------------------------------------------------- */

static bool batch_full(const struct webhook_sink *k, const struct batch *b)
{
	return b->events >= (uint32_t)k->batch_events ||
	       b->bytes + k->array >= (size_t)k->batch_bytes;
}

/* The open batch joins the closed ones (with the queue full it stays open
 * and grows: that takes events that arrive while the sink is blocked). */
static void close_open(struct webhook_sink *k)
{
	if (k->open.events == 0 || k->nclosed == WEBHOOK_QUEUE)
		return;
	k->closed[(k->head + k->nclosed) % WEBHOOK_QUEUE] = k->open;
	k->nclosed++;
	k->closed_bytes += k->open.bytes;
	memset(&k->open, 0, sizeof k->open);
}

/* The body, key, signature and headers of the oldest closed batch, whose
 * bytes leave s->out. */
static int prepare(struct sink *s, struct err *e)
{
	struct webhook_sink *k = s->backend;
	struct batch b = k->closed[k->head];
	char first[POS_STR_MAX], last[POS_STR_MAX], line[sizeof k->key + 32];
	struct curl_slist *h = NULL;
	bool ok = true;

	buf_clear(&k->body);
	if (k->array) {
		const char *p = s->out.data, *end = s->out.data + b.bytes;

		buf_putc(&k->body, '[');
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

			if (p != s->out.data)
				buf_putc(&k->body, ',');
			buf_append(&k->body, p, n);
			p += n + 1;
		}
		buf_putc(&k->body, ']');
	} else {
		buf_append(&k->body, s->out.data, b.bytes);
	}
	if (!buf_ok(&k->body))
		return err_setk(e, ERR_SINK, "could not prepare a webhook request: out of memory");
	buf_consume(&s->out, b.bytes);
	k->closed_bytes -= b.bytes;
	k->head = (k->head + 1) % WEBHOOK_QUEUE;
	k->nclosed--;

	pos_format(&b.first, first);
	pos_format(&b.last, last);
	snprintf(k->key, sizeof k->key, "%s:%s-%s", k->prefix, first, last);
	snprintf(line, sizeof line, "Idempotency-Key: %s", k->key);
	ok = (h = curl_slist_append(h, line)) != NULL;
	ok = ok &&
	     (h = curl_slist_append(h, k->array ? "Content-Type: application/json"
	                                        : "Content-Type: application/x-ndjson")) != NULL;
	ok = ok && (h = curl_slist_append(h, "Expect:")) != NULL; /* no 100-continue wait */
	snprintf(line, sizeof line, "Pgstream-Events: %" PRIu32, b.events);
	ok = ok && (h = curl_slist_append(h, line)) != NULL;
	for (char *p = k->user_headers; ok && p && *p;) {
		char *nl = strchr(p, '\n');

		if (nl)
			*nl = '\0'; /* curl copies the line */
		ok = (h = curl_slist_append(h, p)) != NULL;
		if (nl)
			*nl = '\n';
		p = nl ? nl + 1 : p + strlen(p);
	}
	if (ok && k->secret) {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int mdlen = 0;
		char sig[sizeof "X-Pgstream-Signature: sha256=" + 2 * EVP_MAX_MD_SIZE];
		int n = snprintf(sig, sizeof sig, "X-Pgstream-Signature: sha256=");

		if (HMAC(EVP_sha256(), k->secret, (int)strlen(k->secret),
		         (const unsigned char *)k->body.data, k->body.len, md, &mdlen) == NULL) {
			curl_slist_free_all(h);
			return err_setk(e, ERR_SINK,
			                "could not sign a webhook request: HMAC failed");
		}
		for (unsigned i = 0; i < mdlen; i++)
			n += snprintf(sig + n, sizeof sig - (size_t)n, "%02x", md[i]);
		ok = (h = curl_slist_append(h, sig)) != NULL;
	}
	if (!ok) {
		curl_slist_free_all(h);
		return err_setk(e, ERR_SINK, "could not prepare a webhook request: out of memory");
	}
	curl_slist_free_all(k->headers);
	k->headers = h;
	curl_easy_setopt(k->easy, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(k->easy, CURLOPT_POSTFIELDS, k->body.data);
	curl_easy_setopt(k->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)k->body.len);
	k->inflight = b;
	k->have_inflight = true;
	k->attempts = 0;
	k->retry_at = 0;
	return 0;
}

static int send_request(struct webhook_sink *k, struct err *e)
{
	CURLMcode mc;

	k->reply_len = 0;
	k->errbuf[0] = '\0';
	mc = curl_multi_add_handle(k->multi, k->easy);
	if (mc != CURLM_OK)
		return err_setk(e, ERR_SINK, "could not send a webhook request: %s",
		                curl_multi_strerror(mc));
	k->running = true;
	k->since_drive = WEBHOOK_DRIVE_EVERY; /* look at it at the next event */
	return 0;
}

/* Start what may start: the next batch once none is in flight (the open
 * one only after its linger, or at once when forced), a retry once due. */
static int pump(struct sink *s, bool force, struct err *e)
{
	struct webhook_sink *k = s->backend;

	if (k->f.failed)
		return 0;
	if (!k->have_inflight) {
		if (k->nclosed == 0 && k->open.events > 0 &&
		    (force || clock_ms() - k->open.opened_ms >= k->linger_ms))
			close_open(k);
		if (k->nclosed > 0) {
			if (prepare(s, e) < 0 || send_request(k, e) < 0)
				return -1;
		}
	} else if (!k->running && clock_ms() >= k->retry_at) {
		if (send_request(k, e) < 0)
			return -1;
	}
	s->blocked = k->have_inflight && k->nclosed > 0;
	return 0;
}

/* ---- replies --------------------------------------------------------------- */

/* What a failed attempt waits before the next: Retry-After when the reply
 * has one, else 100 ms doubling per attempt up to the cap, each drawn
 * between half and all of it so that many senders do not retry in step. */
static int64_t retry_delay(struct webhook_sink *k, curl_off_t retry_after_s)
{
	int64_t d = WEBHOOK_BACKOFF_FIRST_MS;

	if (retry_after_s > 0)
		return retry_after_s > WEBHOOK_RETRY_AFTER_MAX_MS / 1000
		           ? WEBHOOK_RETRY_AFTER_MAX_MS
		           : retry_after_s * 1000;
	for (unsigned i = 1; i < k->attempts && d < k->retry_max_ms; i++)
		d *= 2;
	if (d > k->retry_max_ms)
		d = k->retry_max_ms;
	return d / 2 + (int64_t)(rnd(k) % (uint64_t)(d / 2 + 1));
}

static void retry_later(struct webhook_sink *k, const char *why, curl_off_t retry_after_s)
{
	int64_t d;

	k->attempts++;
	d = retry_delay(k, retry_after_s);
	k->retry_at = clock_ms() + d;
	log_warn("webhook: batch %s (%" PRIu32 " events) not delivered: %s; retrying in %.1f s "
	         "(attempt %u%s; nothing after it is acknowledged)",
	         k->key, k->inflight.events, why, (double)d / 1000, k->attempts + 1,
	         retry_after_s > 0 ? ", as Retry-After says" : "");
}

/* Errors no retry can cure: the configuration must change. */
static bool permanent(CURLcode rc)
{
	switch (rc) {
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_NOT_BUILT_IN:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_OUT_OF_MEMORY:
	case CURLE_BAD_FUNCTION_ARGUMENT:
		return true;
	default:
		return false;
	}
}

/* One attempt ended with rc (and, for CURLE_OK, an HTTP status). */
static void finished(struct sink *s, CURLcode rc)
{
	struct webhook_sink *k = s->backend;
	long status = 0;
	curl_off_t retry_after = 0;
	char why[CURL_ERROR_SIZE + 64];

	curl_multi_remove_handle(k->multi, k->easy);
	k->running = false;
	if (rc != CURLE_OK) {
		snprintf(why, sizeof why, "%s%s%s", curl_easy_strerror(rc), *k->errbuf ? ": " : "",
		         k->errbuf);
		if (permanent(rc)) {
			sink_fail(
			    &k->f,
			    "could not deliver to the webhook at %s: %s (batch %s, nothing from it "
			    "on acknowledged)",
			    k->where, why, k->key);
			return;
		}
		retry_later(k, why, 0);
		return;
	}
	curl_easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 200 && status < 300) {
		if (k->attempts > 0)
			log_info("webhook: batch %s delivered after %u attempts", k->key,
			         k->attempts + 1);
		s->written_seq = s->confirmed_seq = k->inflight.last_seq;
		k->have_inflight = false;
		return;
	}
	if (status == 408 || status == 429 || status >= 500) {
		curl_easy_getinfo(k->easy, CURLINFO_RETRY_AFTER, &retry_after);
		snprintf(why, sizeof why, "HTTP %ld", status);
		retry_later(k, why, retry_after);
		return;
	}
	{
		char reply[WEBHOOK_REPLY_MAX + 1];

		quote_reply(k->reply, k->reply_len, reply, sizeof reply);
		sink_fail(
		    &k->f,
		    "the webhook at %s refused batch %s (%" PRIu32 " events) with HTTP %ld%s%s%s; "
		    "nothing from it on was acknowledged: fix the receiver (or the events), then "
		    "restart to send it again",
		    k->where, k->key, k->inflight.events, status, *reply ? ": \"" : "", reply,
		    *reply ? "\"" : "");
	}
}

static void collect(struct sink *s)
{
	struct webhook_sink *k = s->backend;
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(k->multi, &left)) != NULL)
		if (m->msg == CURLMSG_DONE)
			finished(s, m->data.result);
}

/* ---- the loop's hooks ------------------------------------------------------- */

static void webhook_adjust_pollset(struct sink *s, struct sink_pollset *ps)
{
	struct webhook_sink *k = s->backend;
	int64_t now = clock_ms(), at = -1;

	for (unsigned i = 0; i < k->nsocks; i++) {
		if (ps->nfds == SINK_POLL_MAX) {
			at = now + 10; /* the rest are looked at in turns */
			break;
		}
		ps->fds[ps->nfds++] =
		    (struct pollfd){.fd = k->socks[i].fd, .events = k->socks[i].events};
	}
	if (k->timer_at >= 0 && (at < 0 || k->timer_at < at))
		at = k->timer_at;
	if (k->have_inflight && !k->running && (at < 0 || k->retry_at < at))
		at = k->retry_at;
	if (!k->have_inflight && !k->f.failed && (k->nclosed > 0 || k->open.events > 0)) {
		int64_t due = k->nclosed > 0 ? now : k->open.opened_ms + k->linger_ms;

		if (at < 0 || due < at)
			at = due;
	}
	if (at >= 0) {
		int64_t wait = at > now ? at - now : 0;

		if (ps->timeout_ms < 0 || wait < ps->timeout_ms)
			ps->timeout_ms = (int)wait;
	}
}

static int webhook_process(struct sink *s, const struct sink_pollset *ps, struct err *e)
{
	struct webhook_sink *k = s->backend;
	int running;

	for (unsigned i = 0; i < ps->nfds; i++) {
		short r = ps->fds[i].revents;
		int mask = (r & POLLIN ? CURL_CSELECT_IN : 0) |
		           (r & POLLOUT ? CURL_CSELECT_OUT : 0) |
		           (r & (POLLERR | POLLHUP | POLLNVAL) ? CURL_CSELECT_ERR : 0);

		if (mask)
			curl_multi_socket_action(k->multi, ps->fds[i].fd, mask, &running);
	}
	if (k->nsocks > ps->nfds) /* more sockets than the poll set had room for */
		for (unsigned i = 0; i < k->nsocks; i++)
			curl_multi_socket_action(k->multi, k->socks[i].fd, 0, &running);
	if (k->timer_at >= 0 && clock_ms() >= k->timer_at) {
		k->timer_at = -1;
		curl_multi_socket_action(k->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	collect(s);
	if (pump(s, false, e) < 0)
		return -1;
	return k->f.failed ? sink_failed(&k->f, e) : 0;
}

/* A look at curl's sockets without waiting, so that a request progresses
 * while the daemon is busy decoding. */
static int drive(struct sink *s, struct err *e)
{
	struct sink_pollset ps = {.nfds = 0, .timeout_ms = -1};

	webhook_adjust_pollset(s, &ps);
	if (ps.nfds > 0 && poll(ps.fds, ps.nfds, 0) < 0)
		for (unsigned i = 0; i < ps.nfds; i++)
			ps.fds[i].revents = 0;
	return webhook_process(s, &ps, e);
}

static int webhook_event_routed(struct sink *s, uint64_t seq, const struct sink_record *rec,
                                struct err *e)
{
	struct webhook_sink *k = s->backend;
	size_t before = k->closed_bytes + k->open.bytes;
	size_t len = s->out.len - before;
	struct pos p = {.commit_lsn = rec->commit_lsn, .lsn = rec->lsn};

	if (k->f.failed)
		return sink_failed(&k->f, e);
	if (len == 0 || s->out.data[s->out.len - 1] != '\n' ||
	    memchr(s->out.data + before, '\n', len - 1) != NULL)
		return err_setk(e, ERR_SINK, "could not send event %" PRIu64 ": not one JSON line",
		                seq);
	if (k->have_prev && k->prev.lsn == p.lsn && k->prev.commit_lsn == p.commit_lsn)
		p.ord = k->prev.ord + 1;
	k->prev = p;
	k->have_prev = true;
	/* This event would take the open batch's body past its bytes (an array's
	 * is one byte more: the brackets, less a newline): it starts the next. */
	if (k->open.events > 0 && k->open.bytes + len + k->array > (size_t)k->batch_bytes)
		close_open(k);
	if (k->open.events == 0) {
		k->open.first = p;
		k->open.opened_ms = clock_ms();
	}
	k->open.last = p;
	k->open.events++;
	k->open.bytes += len;
	k->open.last_seq = seq;
	if (batch_full(k, &k->open))
		close_open(k);
	if (pump(s, false, e) < 0)
		return -1;
	if (k->running && ++k->since_drive >= WEBHOOK_DRIVE_EVERY) {
		k->since_drive = 0;
		return drive(s, e);
	}
	return 0;
}

/* Never waits for a reply: before each status update (durable) the open
 * batch goes at once instead of after its linger, and whatever the endpoint
 * has answered by then is what gets acknowledged. */
static int webhook_flush(struct sink *s, bool durable, struct err *e)
{
	struct webhook_sink *k = s->backend;

	if (k->f.failed)
		return sink_failed(&k->f, e);
	if (drive(s, e) < 0)
		return -1;
	if (pump(s, durable, e) < 0)
		return -1;
	return k->f.failed ? sink_failed(&k->f, e) : 0;
}

/* ---- open and close ----------------------------------------------------------- */

static void set_common(CURL *h, const struct sink_webhook_config *w, char *errbuf)
{
	curl_easy_setopt(h, CURLOPT_URL, w->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
	                 (long)(w->timeout_ms < WEBHOOK_CONNECT_TIMEOUT_MS
	                            ? w->timeout_ms
	                            : WEBHOOK_CONNECT_TIMEOUT_MS));
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
}

/* A connection at start (TLS handshake and certificate check included), so
 * that a wrong host, port or certificate is one line now, not retries. */
static int connect_check(struct webhook_sink *k, const struct sink_webhook_config *w, struct err *e)
{
	CURL *h = curl_easy_init();
	char errbuf[CURL_ERROR_SIZE] = "";
	CURLcode rc;

	if (h == NULL)
		return err_set(e, "could not open the webhook sink: out of memory");
	set_common(h, w, errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
	rc = curl_easy_perform(h);
	curl_easy_cleanup(h);
	if (rc != CURLE_OK)
		return err_set(e, "could not reach the webhook at %s: %s%s%s", k->where,
		               curl_easy_strerror(rc), *errbuf ? ": " : "", errbuf);
	return 0;
}

static int webhook_open(struct sink *s, const struct sink_config *cfg, void *settings,
                        struct err *e)
{
	struct webhook_sink *k = s->backend;
	const struct sink_webhook_config *w = settings;
	char ua[64];

	buf_init(&k->body, 0);
	k->timer_at = -1;
	k->rng = (((uint64_t)clock_ms() * 0x9E3779B97F4A7C15ULL) ^ (uint64_t)getpid()) | 1;
	if (webhook_check_config(cfg, settings, e) < 0 || parse_url(w->url, &k->where, e) < 0)
		return -1;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return err_set(e, "could not open the webhook sink: curl_global_init failed");
	k->global = true;
	k->url = strdup(w->url);
	k->prefix = strdup(w->prefix ? w->prefix : "pgstream");
	k->secret = w->secret ? strdup(w->secret) : NULL;
	k->user_headers = w->headers ? strdup(w->headers) : NULL;
	if (k->url == NULL || k->prefix == NULL || (w->secret && k->secret == NULL) ||
	    (w->headers && k->user_headers == NULL))
		return err_set(e, "could not open the webhook sink: out of memory");
	k->array = w->body && strcmp(w->body, "array") == 0;
	k->batch_events = w->batch_events;
	k->batch_bytes = w->batch_bytes;
	k->linger_ms = w->linger_ms;
	k->retry_max_ms =
	    w->retry_max_ms > WEBHOOK_BACKOFF_FIRST_MS ? w->retry_max_ms : WEBHOOK_BACKOFF_FIRST_MS;
	if (connect_check(k, w, e) < 0)
		return -1;
	k->multi = curl_multi_init();
	k->easy = curl_easy_init();
	if (k->multi == NULL || k->easy == NULL)
		return err_set(e, "could not open the webhook sink: out of memory");
	curl_multi_setopt(k->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(k->multi, CURLMOPT_SOCKETDATA, k);
	curl_multi_setopt(k->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(k->multi, CURLMOPT_TIMERDATA, k);
	set_common(k->easy, w, k->errbuf);
	curl_easy_setopt(k->easy, CURLOPT_URL, k->url);
	curl_easy_setopt(k->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(k->easy, CURLOPT_TIMEOUT_MS, (long)w->timeout_ms);
	curl_easy_setopt(k->easy, CURLOPT_WRITEFUNCTION, on_reply);
	curl_easy_setopt(k->easy, CURLOPT_WRITEDATA, k);
	snprintf(ua, sizeof ua, "pgstream/%s", PGSTREAM_VERSION);
	curl_easy_setopt(k->easy, CURLOPT_USERAGENT, ua);
	log_info("webhook: sending to %s (batches of up to %d events or %d bytes, %s)", k->where,
	         k->batch_events, k->batch_bytes, k->array ? "JSON arrays" : "NDJSON");
	return 0;
}

static void webhook_close(struct sink *s)
{
	struct webhook_sink *k = s->backend;

	if (k->multi && k->easy && k->running)
		curl_multi_remove_handle(k->multi, k->easy);
	if (k->have_inflight || k->nclosed > 0 || k->open.events > 0)
		log_debug("webhook: %s at exit not delivered (not acknowledged: sent again)",
		          k->have_inflight ? "a batch in flight" : "events");
	if (k->easy)
		curl_easy_cleanup(k->easy);
	if (k->multi)
		curl_multi_cleanup(k->multi);
	curl_slist_free_all(k->headers);
	if (k->global)
		curl_global_cleanup();
	free(k->url);
	free(k->prefix);
	free(k->where);
	free(k->user_headers);
	if (k->secret) {
		memset(k->secret, 0, strlen(k->secret));
		free(k->secret);
	}
	buf_reset(&k->body);
}

const struct sink_ops SINK_WEBHOOK = {
    .name = "webhook",
    .backend_size = sizeof(struct webhook_sink),
    .options = WEBHOOK_OPTIONS,
    .settings_size = sizeof(struct sink_webhook_config),
    .json_lines_only = true,
    .check_config = webhook_check_config,
    .open = webhook_open,
    .event_routed = webhook_event_routed,
    .positions_only = true,
    .flush = webhook_flush,
    .adjust_pollset = webhook_adjust_pollset,
    .process = webhook_process,
    .close = webhook_close,
};
