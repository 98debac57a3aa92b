/*
 * sink_redis.c — events appended to Redis Streams with hiredis, exactly
 * once per stream.
 *
 * Each event is one XADD to its table's stream, {prefix}:{schema}.{table}
 * (logical messages: {prefix}:messages), with fields "event" (the event's
 * JSON line without the newline) and "key" (the row's key, when it has
 * one), and an explicit entry ID made of the event's position:
 * commit_lsn-lsn (a non-transactional message: lsn-0). Positions only grow
 * along the stream of changes, so the IDs of one stream do too, and Redis
 * itself refuses an entry a restart sends again ("ERR The ID specified in
 * XADD is equal or smaller than the target stream top item"): that reply
 * counts as delivered. An event is confirmed once its reply has come (and
 * every earlier one's: replies come in order), so an LSN is acknowledged
 * only after Redis has every entry up to it.
 *
 * Counting that refusal as delivered is safe only if a stream never has a
 * gap: an entry missing while a later one is in. Pipelining could make one
 * (an entry refused with OOM, memory freed, the next accepted), so entries
 * are added by a small script (ADD_SCRIPT, loaded at every connection, run
 * with EVALSHA) that is also given the ID pgstream sent before to the same
 * stream, and refuses to add unless the stream's last ID has reached that
 * one: after one refusal every later entry of the stream is refused too,
 * and a restart sends them all again in order. One call takes a run of up
 * to REDIS_GROUP_EVENTS consecutive events to one stream, so that its cost
 * is shared.
 *
 * Commands are pipelined: written (RESP) into a buffer that goes to the
 * socket without waiting, replies parsed with hiredis's reader as they
 * arrive. Calls for up to REDIS_WINDOW events or REDIS_WINDOW_BYTES bytes
 * may await replies; past that the sink is blocked and the daemon stops
 * decoding. The socket is in the daemon's poll set (adjust_pollset /
 * process), and looked at without waiting every REDIS_DRIVE_EVERY events
 * while events keep coming.
 *
 * A lost connection (Redis restarted, the network) is retried with backoff,
 * without limit; the commands not yet answered are sent again on the new
 * connection, which their IDs make harmless. Any other error reply stops
 * pgstream with one line, nothing from that event on acknowledged.
 * Reconnecting is a blocking connect of at most REDIS_CONNECT_TIMEOUT_MS,
 * done only while Redis is away, when nothing else could progress.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "sink/sink_int.h"
#include "util/log.h"
#include "util/lsn.h"

/* --sink redis's settings: its options' values (REDIS_OPTIONS). */
struct sink_redis_config {
	const char *url; /* redis://[:password@]host[:port][/db] */
	int maxlen;      /* XADD MAXLEN ~ this; 0: no trimming */
};

static const struct sink_option REDIS_OPTIONS[] = {
    {"redis-url", "REDIS_URL", SINK_OPT_STRING, offsetof(struct sink_redis_config, url), "URL",
     "with --sink redis: redis://[:PASSWORD@]HOST[:PORT][/DB]", NULL, NULL},
    {"redis-maxlen", "REDIS_MAXLEN", SINK_OPT_COUNT, offsetof(struct sink_redis_config, maxlen),
     "N", "trim each stream to about N entries (XADD MAXLEN ~; default 0: never)", NULL, NULL},
    {0},
};

/* Events in calls awaiting replies before the sink blocks. */
#define REDIS_WINDOW       8192
#define REDIS_WINDOW_BYTES (8u << 20)
/* The ring has room beyond the window for events that arrive while the
 * daemon finishes a message after being told to stop. */
#define REDIS_RING               (4 * REDIS_WINDOW)
#define REDIS_CONNECT_TIMEOUT_MS 1000
#define REDIS_OPEN_TIMEOUT_MS    5000
#define REDIS_BACKOFF_FIRST_MS   100
#define REDIS_BACKOFF_MAX_MS     5000
#define REDIS_DRIVE_EVERY        64
/* A run of events to one stream goes in one script call of at most this
 * many events or bytes: the call's cost is shared. */
#define REDIS_GROUP_EVENTS 64
#define REDIS_GROUP_BYTES  (256u << 10)
#define DUPLICATE_ID       "equal or smaller than the target stream top item"

/*
 * One call adds a run of events to one stream. KEYS[1] the stream; ARGV:
 * the ID pgstream sent before to this stream ("" for the first), MAXLEN
 * ("0": none), then per entry its ID, its number of fields and the fields.
 * IDs compare as two decimal numbers (as strings: Lua's numbers are
 * doubles); a missing stream has last ID 0-0. An entry Redis already has
 * (XADD's duplicate refusal) is counted and passed over; any other refusal
 * ends the call. Returns {added, duplicates} or {added, duplicates, the
 * refused entry's ID, Redis's error}.
 */
static const char ADD_SCRIPT[] =
    "if ARGV[1] ~= '' and #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then\n"
    /* Not found: trimmed or deleted since (then the last ID is past it), or
     * never added (a gap in the making). */
    "  local function num(a, b) if #a ~= #b then return #a < #b and -1 or 1 end "
    "if a == b then return 0 end return a < b and -1 or 1 end\n"
    "  local function cmp(a, b) local am, as = string.match(a, '^(%d+)-(%d+)$') "
    "local bm, bs = string.match(b, '^(%d+)-(%d+)$') local c = num(am, bm) "
    "if c == 0 then c = num(as, bs) end return c end\n"
    "  local last = '0-0'\n"
    "  local ok, info = pcall(redis.call, 'XINFO', 'STREAM', KEYS[1])\n"
    "  if ok then for i = 1, #info, 2 do if info[i] == 'last-generated-id' then "
    "last = info[i + 1] end end end\n"
    "  if cmp(last, ARGV[1]) < 0 then return redis.error_reply('PGSTREAM gap: the entry "
    "sent before, ' .. ARGV[1] .. ', is not in the stream (its last ID is ' .. last .. "
    "')') end\n"
    "end\n"
    "local added, dups, i = 0, 0, 3\n"
    "while i <= #ARGV do\n"
    "  local last = i + 1 + 2 * tonumber(ARGV[i + 1])\n"
    "  local r\n"
    "  if ARGV[2] == '0' then r = redis.pcall('XADD', KEYS[1], ARGV[i], unpack(ARGV, i + 2, "
    "last))\n"
    "  else r = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], ARGV[i], unpack(ARGV, "
    "i + 2, last)) end\n"
    "  if type(r) == 'table' and r.err then\n"
    "    if string.find(r.err, 'equal or smaller than the target stream top item', 1, true) "
    "then dups = dups + 1 else return {added, dups, ARGV[i], r.err} end\n"
    "  else added = added + 1 end\n"
    "  i = last + 1\n"
    "end\n"
    "return {added, dups}\n";

/* The last ID sent to each stream in this run: the script's ARGV[1]. */
struct stream_entry {
	char *name;
	char last[48]; /* "" before the first */
};

/* One EVALSHA: a run of events to one stream. */
struct cmd {
	size_t len;    /* of its bytes in pend */
	uint64_t seq;  /* its last event's */
	uint64_t lsn;  /* its first event's, for messages */
	size_t events; /* in it */
};

/* The run being collected: its entries' arguments, RESP-encoded, wait in
 * args until it is closed into one command. */
struct group {
	struct stream_entry *stream; /* NULL: none open */
	char prev[48];               /* the ID sent before it to the stream */
	struct buf args;
	unsigned nargs;
	size_t events;
	uint64_t seq, lsn;
};

struct redis_sink {
	redisContext *c; /* NULL while disconnected */
	char *host, *password, *user;
	int port, db;
	long maxlen;
	char *prefix;

	struct buf pend; /* commands not yet answered, oldest first, from done */
	size_t done;     /* bytes at the front already answered */
	size_t written;  /* bytes (from the front) written to this connection */
	struct cmd *ring;
	size_t head, n;  /* the unanswered commands */
	size_t inflight; /* ... and the events in them */
	struct group g;

	struct buf name, id;           /* scratch */
	char sha[48];                  /* of ADD_SCRIPT, as SCRIPT LOAD said */
	struct stream_entry **streams; /* open addressing by name */
	size_t nstreams, streams_cap;  /* streams_cap: a power of two, or 0 */
	int64_t reconnect_at;
	unsigned attempts;
	unsigned since_drive;
	uint64_t duplicates;   /* entries Redis already had */
	struct sink_failure f; /* the first failure that will not pass */
};

/* ---- configuration ------------------------------------------------------ */

struct redis_url {
	char host[256], user[128], password[256];
	int port, db;
};

/* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] */
static int parse_url(const char *url, struct redis_url *u, struct err *e)
{
	const char *p, *at, *slash, *hostend, *colon;
	size_t n;

	memset(u, 0, sizeof *u);
	u->port = 6379;
	if (url == NULL)
		return err_set(e, "invalid options: --sink redis needs --redis-url "
		                  "redis://HOST[:PORT] (or REDIS_URL)");
	if (strncmp(url, "rediss://", 9) == 0)
		return err_set(e, "invalid value for --redis-url: rediss:// (TLS) is not supported "
		                  "(Debian's hiredis 0.14 has no TLS)");
	if (strncmp(url, "redis://", 8) != 0)
		return err_set(e,
		               "invalid value for --redis-url: \"%.60s\" (expected "
		               "redis://[:PASSWORD@]HOST[:PORT][/DB])",
		               url);
	p = url + 8;
	slash = strchr(p, '/');
	at = NULL; /* the last '@' before the path: a password may hold one */
	for (const char *q = p; *q && (slash == NULL || q < slash); q++)
		if (*q == '@')
			at = q;
	if (at) {
		const char *sep = memchr(p, ':', (size_t)(at - p));
		const char *pw = sep ? sep + 1 : p;
		size_t ul = sep ? (size_t)(sep - p) : 0, pl = (size_t)(at - pw);

		if (ul >= sizeof u->user || pl >= sizeof u->password)
			return err_set(e,
			               "invalid value for --redis-url: user or password too long");
		memcpy(u->user, p, ul);
		memcpy(u->password, pw, pl);
		p = at + 1;
	}
	if (*p == '[') {
		hostend = strchr(p, ']');
		if (hostend == NULL)
			return err_set(e, "invalid value for --redis-url: unclosed [ in the host");
		n = (size_t)(hostend - p - 1);
		if (n >= sizeof u->host)
			return err_set(e, "invalid value for --redis-url: host too long");
		memcpy(u->host, p + 1, n);
		p = hostend + 1;
	} else {
		n = strcspn(p, ":/");
		if (n >= sizeof u->host)
			return err_set(e, "invalid value for --redis-url: host too long");
		memcpy(u->host, p, n);
		p += n;
	}
	if (u->host[0] == '\0')
		return err_set(e, "invalid value for --redis-url: no host");
	colon = *p == ':' ? p : NULL;
	if (colon) {
		char *end;
		long v = strtol(colon + 1, &end, 10);

		if (end == colon + 1 || v < 1 || v > 65535 || (*end != '\0' && *end != '/'))
			return err_set(e, "invalid value for --redis-url: bad port");
		u->port = (int)v;
		p = end;
	}
	if (*p == '/' && p[1] != '\0') {
		char *end;
		long v = strtol(p + 1, &end, 10);

		if (end == p + 1 || *end != '\0' || v < 0 || v > 1 << 20)
			return err_set(e, "invalid value for --redis-url: bad database number");
		u->db = (int)v;
	} else if (*p != '\0' && strcmp(p, "/") != 0) {
		return err_set(e, "invalid value for --redis-url: unexpected \"%.40s\"", p);
	}
	return 0;
}

static int redis_check_config(const struct sink_config *cfg, void *settings, struct err *e)
{
	const struct sink_redis_config *c = settings;
	struct redis_url u;

	(void)cfg;
	if (c->maxlen < 0)
		return err_set(e, "invalid value for --redis-maxlen: must not be negative");
	return parse_url(c->url, &u, e);
}

/* ---- helpers -------------------------------------------------------------- */

/* The stream a queued command is for: its fourth element, after
 * "*N\r\n$7\r\nEVALSHA\r\n$40\r\nSHA\r\n$1\r\n1\r\n". */
static void command_stream(const char *cmd, size_t len, char *out, size_t cap)
{
	const char *p = cmd, *end = cmd + len, *nl;
	long n;

	out[0] = '\0';
	for (int i = 0; i < 7; i++) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			return;
		p = nl + 1;
	}
	if (p >= end || *p != '$')
		return;
	n = strtol(p + 1, NULL, 10); /* ends at the "\r\n" after it */
	nl = memchr(p, '\n', (size_t)(end - p));
	if (nl == NULL || n < 0 || n > end - (nl + 1))
		return;
	p = nl + 1;
	if ((size_t)n >= cap)
		n = (long)cap - 1;
	memcpy(out, p, (size_t)n);
	out[n] = '\0';
}

/* ---- the connection --------------------------------------------------------- */

static void disconnect(struct redis_sink *k)
{
	if (k->c)
		redisFree(k->c);
	k->c = NULL;
	k->written = k->done; /* the unanswered go again on the next connection */
}

/* Connect, authenticate, select, and check Redis answers (not LOADING).
 * 0 connected; -1 with why set. */
static int dial(struct redis_sink *k, int timeout_ms, char *why, size_t whylen, bool *fatal)
{
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	redisContext *c = redisConnectWithTimeout(k->host, k->port, tv);
	redisReply *r;
	int flags;

	*fatal = false;
	if (c == NULL || c->err) {
		snprintf(why, whylen, "%s", c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return -1;
	}
	redisSetTimeout(c, tv);
	redisEnableKeepAlive(c);
	if (k->password) {
		r = k->user ? redisCommand(c, "AUTH %s %s", k->user, k->password)
		            : redisCommand(c, "AUTH %s", k->password);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			snprintf(why, whylen, "AUTH: %s", r ? r->str : c->errstr);
			*fatal = r != NULL;
			goto fail;
		}
		freeReplyObject(r);
	}
	if (k->db) {
		r = redisCommand(c, "SELECT %d", k->db);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			snprintf(why, whylen, "SELECT %d: %s", k->db, r ? r->str : c->errstr);
			*fatal = r != NULL;
			goto fail;
		}
		freeReplyObject(r);
	}
	r = redisCommand(c, "PING");
	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		snprintf(why, whylen, "PING: %s", r ? r->str : c->errstr);
		*fatal = r != NULL && strncmp(r->str, "LOADING", 7) != 0 &&
		         strncmp(r->str, "BUSY", 4) != 0;
		goto fail;
	}
	freeReplyObject(r);
	r = redisCommand(c, "SCRIPT LOAD %s", ADD_SCRIPT);
	if (r == NULL || r->type != REDIS_REPLY_STRING || r->len >= (int)sizeof k->sha) {
		snprintf(why, whylen, "SCRIPT LOAD: %s",
		         r ? (r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply")
		           : c->errstr);
		*fatal = r != NULL;
		goto fail;
	}
	memcpy(k->sha, r->str, (size_t)r->len + 1);
	freeReplyObject(r);
	flags = fcntl(c->fd, F_GETFL);
	if (flags < 0 || fcntl(c->fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
	    fcntl(c->fd, F_SETFD, FD_CLOEXEC) < 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		redisFree(c);
		return -1;
	}
	k->c = c;
	return 0;
fail:
	if (r)
		freeReplyObject(r);
	redisFree(c);
	return -1;
}

static void lost(struct redis_sink *k, const char *what)
{
	int64_t d = REDIS_BACKOFF_FIRST_MS;

	disconnect(k);
	for (unsigned i = 0; i < k->attempts && d < REDIS_BACKOFF_MAX_MS; i++)
		d *= 2;
	if (d > REDIS_BACKOFF_MAX_MS)
		d = REDIS_BACKOFF_MAX_MS;
	k->attempts++;
	k->reconnect_at = clock_ms() + d;
	if (k->attempts == 1 || k->attempts % 10 == 0)
		log_warn("redis: %s; reconnecting in %.1f s (%zu entries unanswered, sent again; "
		         "nothing after them is acknowledged)",
		         what, (double)d / 1000, k->n);
}

static void reconnect(struct redis_sink *k)
{
	char why[256];
	bool fatal;

	if (dial(k, REDIS_CONNECT_TIMEOUT_MS, why, sizeof why, &fatal) < 0) {
		if (fatal)
			sink_fail(&k->f, "could not reconnect to Redis at %s:%d: %s", k->host,
			          k->port, why);
		else
			lost(k, why);
		return;
	}
	log_info("redis: reconnected to %s:%d after %u attempts, sending %zu entries again",
	         k->host, k->port, k->attempts, k->n);
	k->attempts = 0;
}

/* ---- replies ---------------------------------------------------------------- */

static void refused(struct redis_sink *k, const struct cmd *c, const char *id, const char *why)
{
	char stream[256], lsn[LSN_STR_MAX];
	const char *dash = id ? strchr(id, '-') : NULL;

	command_stream(k->pend.data + k->done, c->len, stream, sizeof stream);
	uint64_t at = c->lsn;

	if (dash) /* commit-lsn, or lsn-0 for a non-transactional message */
		at = strcmp(dash + 1, "0") == 0 ? strtoull(id, NULL, 10)
		                                : strtoull(dash + 1, NULL, 10);
	lsn_format(at, lsn);
	sink_fail(&k->f,
	          "Redis refused XADD to stream %s (the event at %s): %s; nothing from it on was "
	          "acknowledged: fix Redis, then restart to send it again",
	          stream, lsn, why);
}

static void answered(struct sink *s, redisReply *r)
{
	struct redis_sink *k = s->backend;
	struct cmd *c = &k->ring[k->head];

	if (r->type == REDIS_REPLY_ERROR) {
		refused(k, c, NULL, r->str);
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
	    r->element[1]->type != REDIS_REPLY_INTEGER) {
		refused(k, c, NULL, "unexpected reply to the XADD script");
		return;
	}
	k->duplicates += (uint64_t)r->element[1]->integer; /* sent again after a restart */
	if (r->elements >= 4) {
		refused(k, c, r->element[2]->type == REDIS_REPLY_STRING ? r->element[2]->str : NULL,
		        r->element[3]->type == REDIS_REPLY_STRING ? r->element[3]->str : "refused");
		return;
	}
	s->confirmed_seq = s->written_seq = c->seq;
	k->done += c->len;
	k->inflight -= c->events;
	k->head = (k->head + 1) % REDIS_RING;
	k->n--;
}

static void put_arg(struct buf *b, const char *p, size_t n)
{
	buf_printf(b, "$%zu\r\n", n);
	buf_append(b, p, n);
	buf_append(b, "\r\n", 2);
}

/* The open run becomes one command at the end of pend. */
static void close_group(struct redis_sink *k)
{
	struct group *g = &k->g;
	char maxlen[24];
	int ml;

	if (g->stream == NULL)
		return;
	ml = snprintf(maxlen, sizeof maxlen, "%ld", k->maxlen);
	size_t before = k->pend.len;
	buf_printf(&k->pend, "*%u\r\n", g->nargs + 6);
	put_arg(&k->pend, "EVALSHA", 7);
	put_arg(&k->pend, k->sha, strlen(k->sha));
	put_arg(&k->pend, "1", 1);
	put_arg(&k->pend, g->stream->name, strlen(g->stream->name));
	put_arg(&k->pend, g->prev, strlen(g->prev));
	put_arg(&k->pend, maxlen, (size_t)ml);
	buf_append(&k->pend, g->args.data, g->args.len);
	k->ring[(k->head + k->n) % REDIS_RING] = (struct cmd){
	    .len = k->pend.len - before, .seq = g->seq, .lsn = g->lsn, .events = g->events};
	k->n++;
	k->inflight += g->events;
	buf_clear(&g->args);
	g->stream = NULL;
	g->nargs = 0;
	g->events = 0;
}

/* Write what is unwritten, read what has come, without waiting. */
static void io(struct sink *s)
{
	struct redis_sink *k = s->backend;
	char chunk[65536];

	close_group(k);

	while (k->c && !k->f.failed && k->written < k->pend.len) {
		ssize_t w = write(k->c->fd, k->pend.data + k->written, k->pend.len - k->written);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w < 0) {
			char what[128];

			snprintf(what, sizeof what, "could not write to Redis: %s",
			         strerror(errno));
			lost(k, what);
			break;
		}
		k->written += (size_t)w;
	}
	while (k->c && !k->f.failed && k->n > 0) {
		ssize_t got = read(k->c->fd, chunk, sizeof chunk);
		void *reply;

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (got <= 0) {
			char what[128];

			snprintf(what, sizeof what, "connection to Redis lost: %s",
			         got == 0 ? "closed by the server" : strerror(errno));
			lost(k, what);
			break;
		}
		if (redisReaderFeed(k->c->reader, chunk, (size_t)got) != REDIS_OK) {
			lost(k, "could not read Redis's reply");
			break;
		}
		while (k->c && !k->f.failed && k->n > 0) {
			if (redisReaderGetReply(k->c->reader, &reply) != REDIS_OK) {
				lost(k, "Redis sent a reply that could not be parsed");
				break;
			}
			if (reply == NULL)
				break;
			answered(s, reply);
			freeReplyObject(reply);
		}
	}
	/* Compact once the answered front is most of the buffer. */
	if (k->done > 65536 && k->done * 2 > k->pend.len) {
		buf_consume(&k->pend, k->done);
		k->written -= k->done;
		k->done = 0;
	}
	s->blocked = !k->f.failed &&
	             (k->inflight >= REDIS_WINDOW || k->pend.len - k->done >= REDIS_WINDOW_BYTES);
}

/* ---- the loop's hooks --------------------------------------------------------- */

static void redis_adjust_pollset(struct sink *s, struct sink_pollset *ps)
{
	struct redis_sink *k = s->backend;

	if (k->f.failed)
		return;
	if (k->c == NULL) {
		int64_t wait = k->reconnect_at - clock_ms();

		if (wait < 0)
			wait = 0;
		if (ps->timeout_ms < 0 || wait < ps->timeout_ms)
			ps->timeout_ms = (int)wait;
		return;
	}
	if ((k->n > 0 || k->written < k->pend.len) && ps->nfds < SINK_POLL_MAX)
		ps->fds[ps->nfds++] = (struct pollfd){
		    .fd = k->c->fd,
		    .events = (short)(POLLIN | (k->written < k->pend.len ? POLLOUT : 0))};
}

static int redis_process(struct sink *s, const struct sink_pollset *ps, struct err *e)
{
	struct redis_sink *k = s->backend;

	(void)ps; /* io() tries the socket itself, without waiting */
	if (!k->f.failed && k->c == NULL && clock_ms() >= k->reconnect_at)
		reconnect(k);
	io(s);
	return k->f.failed ? sink_failed(&k->f, e) : 0;
}

static uint64_t name_hash(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
	return h;
}

static int streams_grow(struct redis_sink *k)
{
	size_t cap = k->streams_cap ? k->streams_cap * 2 : 64;
	struct stream_entry **t = calloc(cap, sizeof *t);

	if (t == NULL)
		return -1;
	for (size_t i = 0; i < k->streams_cap; i++) {
		struct stream_entry *old = k->streams[i];
		size_t j;

		if (old == NULL)
			continue;
		for (j = name_hash(old->name, strlen(old->name)) & (cap - 1); t[j];
		     j = (j + 1) & (cap - 1))
			;
		t[j] = old;
	}
	free(k->streams);
	k->streams = t;
	k->streams_cap = cap;
	return 0;
}

/* The entry of the stream named in k->name, added on first use. */
static struct stream_entry *stream_for(struct redis_sink *k)
{
	struct stream_entry *t;
	size_t i;

	if (k->streams_cap) {
		for (i = name_hash(k->name.data, k->name.len) & (k->streams_cap - 1);
		     (t = k->streams[i]); i = (i + 1) & (k->streams_cap - 1))
			if (strcmp(t->name, k->name.data) == 0)
				return t;
	}
	if ((k->nstreams + 1) * 2 > k->streams_cap && streams_grow(k) < 0)
		return NULL;
	t = calloc(1, sizeof *t);
	if (t == NULL || (t->name = strdup(k->name.data)) == NULL) {
		free(t);
		return NULL;
	}
	for (i = name_hash(k->name.data, k->name.len) & (k->streams_cap - 1); k->streams[i];
	     i = (i + 1) & (k->streams_cap - 1))
		;
	k->streams[i] = t;
	k->nstreams++;
	return t;
}

static int redis_event_routed(struct sink *s, uint64_t seq, const struct sink_record *rec,
                              struct err *e)
{
	struct redis_sink *k = s->backend;
	struct group *g = &k->g;
	size_t len = s->out.len;
	struct stream_entry *st;
	char nfields[4];

	if (k->f.failed)
		return sink_failed(&k->f, e);
	if (len == 0 || s->out.data[len - 1] != '\n')
		return err_setk(e, ERR_SINK, "could not send event %" PRIu64 ": not one JSON line",
		                seq);
	if (k->n >= REDIS_RING - 1)
		return err_setk(e, ERR_SINK, "could not queue an event for Redis: %d unanswered",
		                REDIS_RING);
	buf_clear(&k->name);
	buf_puts(&k->name, k->prefix);
	if (rec->schema) {
		buf_putc(&k->name, ':');
		buf_puts(&k->name, rec->schema);
		buf_putc(&k->name, '.');
		buf_puts(&k->name, rec->table);
	} else {
		buf_puts(&k->name, ":messages");
	}
	buf_clear(&k->id);
	/* A non-transactional message has no commit: its own position leads,
	 * which keeps the messages stream's IDs growing (see the top). */
	if (rec->transactional)
		buf_printf(&k->id, "%" PRIu64 "-%" PRIu64, rec->commit_lsn, rec->lsn);
	else
		buf_printf(&k->id, "%" PRIu64 "-0", rec->lsn);
	if (!buf_ok(&k->name) || !buf_ok(&k->id))
		return err_setk(e, ERR_SINK, "could not queue an event for Redis: out of memory");
	st = stream_for(k);
	if (st == NULL || k->id.len >= sizeof st->last)
		return err_setk(e, ERR_SINK, "could not queue an event for Redis: out of memory");
	if (g->stream != st || g->events >= REDIS_GROUP_EVENTS || g->args.len >= REDIS_GROUP_BYTES)
		close_group(k);
	if (g->stream == NULL) {
		g->stream = st;
		memcpy(g->prev, st->last, sizeof g->prev);
		g->lsn = rec->lsn;
	}
	put_arg(&g->args, k->id.data, k->id.len);
	put_arg(&g->args, nfields,
	        (size_t)snprintf(nfields, sizeof nfields, "%d", rec->key ? 2 : 1));
	put_arg(&g->args, "event", 5);
	put_arg(&g->args, s->out.data, len - 1);
	g->nargs += 4;
	if (rec->key) {
		put_arg(&g->args, "key", 3);
		put_arg(&g->args, rec->key, rec->key_len);
		g->nargs += 2;
	}
	if (!buf_ok(&g->args) || !buf_ok(&k->pend))
		return err_setk(e, ERR_SINK, "could not queue an event for Redis: out of memory");
	memcpy(st->last, k->id.data, k->id.len + 1);
	g->events++;
	g->seq = seq;
	buf_clear(&s->out);
	if (++k->since_drive >= REDIS_DRIVE_EVERY) {
		k->since_drive = 0;
		io(s);
	} else {
		s->blocked = k->pend.len - k->done >= REDIS_WINDOW_BYTES;
	}
	return k->f.failed ? sink_failed(&k->f, e) : 0;
}

/* Never waits: what Redis has answered by now is what gets confirmed. */
static int redis_flush(struct sink *s, bool durable, struct err *e)
{
	struct redis_sink *k = s->backend;

	(void)durable; /* a reply means Redis has it, as its persistence settings keep it */
	if (!k->f.failed && k->c == NULL && clock_ms() >= k->reconnect_at)
		reconnect(k);
	io(s);
	return k->f.failed ? sink_failed(&k->f, e) : 0;
}

/* ---- open and close ------------------------------------------------------------ */

static int redis_open(struct sink *s, const struct sink_config *cfg, void *settings, struct err *e)
{
	const struct sink_redis_config *c = settings;
	struct redis_sink *k = s->backend;
	struct redis_url u;
	char why[256];
	bool fatal;

	buf_init(&k->pend, 0);
	buf_init(&k->g.args, 0);
	buf_init(&k->name, 0);
	buf_init(&k->id, 0);
	if (redis_check_config(cfg, settings, e) < 0 || parse_url(c->url, &u, e) < 0)
		return -1;
	k->host = strdup(u.host);
	k->prefix = strdup(cfg->prefix);
	k->password = u.password[0] ? strdup(u.password) : NULL;
	k->user = u.user[0] ? strdup(u.user) : NULL;
	k->ring = calloc(REDIS_RING, sizeof *k->ring);
	if (k->host == NULL || k->prefix == NULL || k->ring == NULL ||
	    (u.password[0] && k->password == NULL) || (u.user[0] && k->user == NULL))
		return err_set(e, "could not open the Redis sink: out of memory");
	k->port = u.port;
	k->db = u.db;
	k->maxlen = c->maxlen;
	memset(&u, 0, sizeof u);
	if (dial(k, REDIS_OPEN_TIMEOUT_MS, why, sizeof why, &fatal) < 0)
		return err_set(e, "could not connect to Redis at %s:%d: %s", k->host, k->port, why);
	log_info("redis: connected to %s:%d, streams %s:{schema}.{table}", k->host, k->port,
	         k->prefix);
	log_debug("redis: XADD script loaded as %s", k->sha);
	return 0;
}

static void redis_close(struct sink *s)
{
	struct redis_sink *k = s->backend;

	if (k->duplicates)
		log_info("redis: %" PRIu64 " entries were already in Redis (sent again after a "
		         "restart) and were not added twice",
		         k->duplicates);
	disconnect(k);
	free(k->host);
	free(k->prefix);
	free(k->user);
	if (k->password) {
		memset(k->password, 0, strlen(k->password));
		free(k->password);
	}
	free(k->ring);
	for (size_t i = 0; i < k->streams_cap; i++)
		if (k->streams[i]) {
			free(k->streams[i]->name);
			free(k->streams[i]);
		}
	free(k->streams);
	buf_reset(&k->pend);
	buf_reset(&k->g.args);
	buf_reset(&k->name);
	buf_reset(&k->id);
}

const struct sink_ops SINK_REDIS = {
    .name = "redis",
    .backend_size = sizeof(struct redis_sink),
    .options = REDIS_OPTIONS,
    .settings_size = sizeof(struct sink_redis_config),
    .json_lines_only = true,
    .check_config = redis_check_config,
    .open = redis_open,
    .event_routed = redis_event_routed,
    .flush = redis_flush,
    .adjust_pollset = redis_adjust_pollset,
    .process = redis_process,
    .close = redis_close,
};
