/*
 * backfill.c — on-demand snapshots with DBLog's watermarks; see backfill.h.
 *
 * One table is in flight at a time, one chunk of it at most: the chunk's
 * rows (the server's result, owned by pg/backfill.c), a flag per row that a
 * change took it out, and an open-addressing table from the rows' keys to
 * their index, so that each change between the watermarks costs one hash
 * of its key, not a scan of the chunk.
 */
#include "backfill.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event/jstring.h"
#include "pg/backfill.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/lsn.h"

#define MAX_QUEUED 256

/* Between two reads of a chunk whose snapshot missed committed
 * transactions, at most; and how long before that is said. */
#define UNSETTLED_PAUSE_MS 50
#define UNSETTLED_SAY_MS   1000

/* Commits the stream passed that a chunk's snapshot must see: as many as
 * can pass while one chunk is read and the next one started. */
#define RECENT_XIDS 1024

struct backfill {
	struct backfill_config cfg;
	struct backfill_conn *bc;
	struct relmap *rels; /* the relations of the tables read */
	int server_version;
	char run[24]; /* this process's (and session's) mark on its watermarks */

	char *queue[MAX_QUEUED]; /* tables still to read, in order */
	size_t nqueue;

	/* The table in flight. */
	struct backfill_table *t;
	const struct relinfo *ri;
	char **after; /* the key the current chunk starts after, NULL: the first */
	uint64_t chunk_no;
	char *low, *high; /* the current chunk's watermarks, as written */
	bool window;      /* the stream is between them */
	struct backfill_chunk chunk;
	bool *gone;      /* per row: a change took it out */
	uint32_t *slots; /* key hash table: row index + 1, 0 empty */
	uint32_t nslots; /* a power of two, at least twice the rows */
	int emit_next;   /* next row to emit after the high watermark */
	int64_t rows_done, started_ms;
	int unsettled;           /* transactions the chunk's snapshot missed */
	int64_t unsettled_since; /* since when the chunk waits for them */
	bool unsettled_said;     /* and that was logged */

	/* The transactions the stream committed last, newest at
	 * recent[(ncommits - 1) % RECENT_XIDS]. */
	uint32_t recent[RECENT_XIDS];
	uint64_t ncommits;

	/* Where the key columns are in the stream's relation of the table. */
	const struct relation *srel;
	int32_t *spk;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void new_run(struct backfill *bf)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(bf->run, sizeof bf->run, "%lx.%lx",
	         (unsigned long)ts.tv_sec ^ (unsigned long)clock(), (unsigned long)ts.tv_nsec);
}

struct backfill *backfill_new(const struct backfill_config *cfg)
{
	struct backfill *bf = calloc(1, sizeof *bf);

	if (bf == NULL)
		return NULL;
	bf->cfg = *cfg;
	bf->bc = backfill_conn_new(cfg->database_url);
	bf->rels = relmap_new();
	if (bf->bc == NULL || bf->rels == NULL) {
		backfill_free(bf);
		return NULL;
	}
	new_run(bf);
	return bf;
}

static void free_after(struct backfill *bf)
{
	if (bf->after && bf->t)
		for (uint16_t i = 0; i < bf->t->npk; i++)
			free(bf->after[i]);
	free(bf->after);
	bf->after = NULL;
}

/* Forget the chunk in flight (not the table). */
static void drop_chunk(struct backfill *bf)
{
	free(bf->low);
	free(bf->high);
	free(bf->gone);
	free(bf->slots);
	bf->low = bf->high = NULL;
	bf->gone = NULL;
	bf->slots = NULL;
	bf->nslots = 0;
	bf->window = false;
	bf->chunk = (struct backfill_chunk){0};
	bf->emit_next = 0;
}

/* Forget the table in flight. */
static void drop_table(struct backfill *bf)
{
	drop_chunk(bf);
	free_after(bf);
	relmap_clear(bf->rels);
	backfill_table_free(bf->t);
	bf->t = NULL;
	bf->ri = NULL;
	free(bf->spk);
	bf->spk = NULL;
	bf->srel = NULL;
	bf->unsettled = 0;
	bf->unsettled_since = 0;
	bf->unsettled_said = false;
}

void backfill_free(struct backfill *bf)
{
	if (bf == NULL)
		return;
	drop_table(bf);
	for (size_t i = 0; i < bf->nqueue; i++)
		free(bf->queue[i]);
	relmap_free(bf->rels);
	backfill_conn_free(bf->bc);
	free(bf);
}

void backfill_session_start(struct backfill *bf, int server_version)
{
	bf->server_version = server_version;
}

void backfill_session_end(struct backfill *bf)
{
	/* The next session replays from the acknowledged position: it meets
	 * this run's watermarks again, and takes the snapshot over from them
	 * as any other run's. The queue is in those watermarks too. */
	if (bf->t)
		log_info("on-demand snapshot of %s.%s paused: it continues from the stream's "
		         "watermarks",
		         bf->t->rel->nspname, bf->t->rel->relname);
	drop_table(bf);
	for (size_t i = 0; i < bf->nqueue; i++)
		free(bf->queue[i]);
	bf->nqueue = 0;
	backfill_conn_close(bf->bc);
	new_run(bf);
}

/* ---- keys ----------------------------------------------------------------- */

static uint32_t hash_add(uint32_t h, const char *p, uint32_t len)
{
	for (int i = 0; i < 4; i++) /* the length first: ("ab","c") differs from ("a","bc") */
		h = (h ^ ((len >> (8 * i)) & 0xff)) * 16777619u;
	for (uint32_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)p[i]) * 16777619u;
	return h;
}

static const struct pgo_value *row_val(const struct backfill *bf, int row, uint16_t col)
{
	return &bf->chunk.vals[(size_t)row * bf->chunk.ncols + col];
}

static uint32_t row_hash(const struct backfill *bf, int row)
{
	uint32_t h = 2166136261u;

	for (uint16_t i = 0; i < bf->t->npk; i++) {
		const struct pgo_value *v = row_val(bf, row, bf->t->pk[i]);

		h = hash_add(h, v->data, v->len);
	}
	return h;
}

static int index_chunk(struct backfill *bf, struct err *e)
{
	uint32_t n = 16;

	while (n < 2u * (uint32_t)bf->chunk.nrows)
		n *= 2;
	bf->nslots = n;
	bf->slots = calloc(n, sizeof *bf->slots);
	bf->gone = calloc((size_t)bf->chunk.nrows + 1, sizeof *bf->gone);
	if (bf->slots == NULL || bf->gone == NULL)
		return err_set(e, "could not read a chunk: out of memory");
	for (int r = 0; r < bf->chunk.nrows; r++) {
		uint32_t s = row_hash(bf, r) & (n - 1);

		while (bf->slots[s])
			s = (s + 1) & (n - 1);
		bf->slots[s] = (uint32_t)r + 1;
	}
	return 0;
}

/* Map the key's columns into the stream's relation rel (by name; -1 when
 * the stream does not send one, and then no change can match). */
static bool map_stream_key(struct backfill *bf, const struct relation *rel)
{
	if (bf->srel == rel)
		return bf->spk != NULL;
	free(bf->spk);
	bf->srel = rel;
	bf->spk = calloc(bf->t->npk, sizeof *bf->spk);
	if (bf->spk == NULL)
		return false;
	for (uint16_t i = 0; i < bf->t->npk; i++) {
		const char *name = bf->t->rel->cols[bf->t->pk[i]].name;

		bf->spk[i] = -1;
		for (uint16_t k = 0; k < rel->ncols; k++)
			if (strcmp(rel->cols[k].name, name) == 0)
				bf->spk[i] = k;
		if (bf->spk[i] < 0) {
			free(bf->spk);
			bf->spk = NULL;
			return false;
		}
	}
	return true;
}

/* Take the row with tup's key out of the chunk, if there is one. */
static void take_out(struct backfill *bf, const struct pgo_tuple *tup)
{
	uint32_t h = 2166136261u, s;

	if (tup == NULL)
		return;
	for (uint16_t i = 0; i < bf->t->npk; i++) {
		const struct pgo_value *v;

		if (bf->spk[i] >= tup->ncols)
			return;
		v = &tup->cols[bf->spk[i]];
		if (v->kind != PGO_COL_TEXT)
			return; /* a key not sent (unchanged TOAST): the other tuple has it */
		h = hash_add(h, v->data, v->len);
	}
	for (s = h & (bf->nslots - 1); bf->slots[s]; s = (s + 1) & (bf->nslots - 1)) {
		int r = (int)bf->slots[s] - 1;
		bool same = true;

		for (uint16_t i = 0; same && i < bf->t->npk; i++) {
			const struct pgo_value *a = row_val(bf, r, bf->t->pk[i]);
			const struct pgo_value *b = &tup->cols[bf->spk[i]];

			same = a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
		}
		if (same) {
			bf->gone[r] = true;
			return;
		}
	}
}

void backfill_on_change(struct backfill *bf, const struct event *ev)
{
	if (!bf->window || ev->rel == NULL || ev->rel->remote->oid != bf->t->rel->oid)
		return;
	if (ev->op == EVENT_TRUNCATE) {
		for (int r = 0; r < bf->chunk.nrows; r++)
			bf->gone[r] = true; /* rows read before it are gone */
		return;
	}
	if (!map_stream_key(bf, ev->rel->remote))
		return;
	take_out(bf, ev->newtup);
	take_out(bf, ev->oldtup);
}

/* ---- watermarks and chunks ------------------------------------------------ */

static void json_str_list(struct buf *out, char *const *items, size_t n)
{
	buf_putc(out, '[');
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_putc(out, ',');
		json_write_string(out, items[i], strlen(items[i]));
	}
	buf_putc(out, ']');
}

/* The watermark's content: who wrote it, and everything a run that takes
 * the snapshot over needs. */
static char *watermark(const struct backfill *bf, const char *mark)
{
	struct buf b;
	char table[300];
	char *s;

	snprintf(table, sizeof table, "%s.%s", bf->t->rel->nspname, bf->t->rel->relname);
	buf_init(&b, 0);
	buf_puts(&b, "{\"slot\":");
	json_write_string(&b, bf->cfg.slot, strlen(bf->cfg.slot));
	buf_printf(&b, ",\"run\":\"%s\",\"chunk\":%llu,\"mark\":\"%s\",\"table\":", bf->run,
	           (unsigned long long)bf->chunk_no, mark);
	json_write_string(&b, table, strlen(table));
	buf_puts(&b, ",\"after\":");
	if (bf->after)
		json_str_list(&b, bf->after, bf->t->npk);
	else
		buf_puts(&b, "null");
	buf_puts(&b, ",\"queue\":");
	json_str_list(&b, bf->queue, bf->nqueue);
	buf_putc(&b, '}');
	s = buf_ok(&b) ? strdup(b.data) : NULL;
	buf_reset(&b);
	return s;
}

/*
 * Transactions the stream has passed that the chunk's snapshot cannot see.
 * A transaction can have committed - its commit record in the WAL, its
 * changes streamed - and still be invisible to a new snapshot: its backend
 * marks it committed, then waits (for a synchronous standby's reply, or
 * for the CPU) before the server counts it as ended. Rows read without its
 * changes, emitted at the high watermark, would overwrite them. What the
 * stream passes after the chunk started takes rows out (start_chunk); what
 * it passed before is in recent[].
 */
static int unsettled(const struct backfill *bf)
{
	size_t n = bf->ncommits < RECENT_XIDS ? bf->ncommits : RECENT_XIDS;
	int count = 0;

	for (size_t i = 0; i < n; i++)
		count += !backfill_chunk_sees(&bf->chunk, bf->recent[i]);
	return count;
}

void backfill_on_commit(struct backfill *bf, uint32_t xid)
{
	bf->recent[bf->ncommits++ % RECENT_XIDS] = xid;
}

/* Low watermark, the chunk's SELECT, high watermark: in that order in
 * time, so the SELECT's snapshot lies between the two in the WAL. */
static int start_chunk(struct backfill *bf, struct err *e)
{
	drop_chunk(bf);
	bf->chunk_no++;
	bf->low = watermark(bf, "low");
	bf->high = watermark(bf, "high");
	if (bf->low == NULL || bf->high == NULL)
		return err_set(e, "could not start a chunk: out of memory");
	if (backfill_emit(bf->bc, BACKFILL_WATERMARK_PREFIX, bf->low, NULL, e) < 0 ||
	    backfill_read_chunk(bf->bc, bf->t, (const char *const *)bf->after, bf->cfg.chunk_rows,
	                        &bf->chunk, e) < 0 ||
	    index_chunk(bf, e) < 0 ||
	    backfill_emit(bf->bc, BACKFILL_WATERMARK_PREFIX, bf->high, NULL, e) < 0)
		return -1;
	/* Changes the stream has still to pass before the low watermark take
	 * rows out too: the SELECT saw them or something newer (or did not see
	 * them at all, when their transaction was still settling), and the
	 * change itself carries the row. */
	bf->window = true;
	bf->unsettled = unsettled(bf);
	if (bf->unsettled) {
		int64_t now = now_ms();

		/* Behind a healthy synchronous standby this lasts a round trip:
		 * said only when it lasts. */
		if (bf->unsettled_since == 0)
			bf->unsettled_since = now;
		if (!bf->unsettled_said && now - bf->unsettled_since >= UNSETTLED_SAY_MS) {
			bf->unsettled_said = true;
			log_info(
			    "on-demand snapshot of %s.%s: %d transactions have committed but are "
			    "not visible yet (waiting for a synchronous standby?): the chunk is "
			    "read again once they are",
			    bf->t->rel->nspname, bf->t->rel->relname, bf->unsettled);
		}
		bf->chunk.nrows = 0; /* none of its rows is emitted */
		return 0;
	}
	if (bf->unsettled_since) {
		log_msg(bf->unsettled_said ? LOG_INFO : LOG_DEBUG,
		        "on-demand snapshot of %s.%s: the transactions settled after %.3f s",
		        bf->t->rel->nspname, bf->t->rel->relname,
		        (double)(now_ms() - bf->unsettled_since) / 1000);
		bf->unsettled_since = 0;
		bf->unsettled_said = false;
	}
	log_debug("on-demand snapshot of %s.%s: chunk %llu, %d rows", bf->t->rel->nspname,
	          bf->t->rel->relname, (unsigned long long)bf->chunk_no, bf->chunk.nrows);
	return 0;
}

static void free_keys(char **keys, uint16_t n)
{
	for (uint16_t i = 0; keys && i < n; i++)
		free(keys[i]);
	free(keys);
}

/* Open table name and read its first chunk (after the nafter key values
 * given, taking them over, when the snapshot is taken over: a watermark of
 * the first chunk takes it over with none). 0 if the table cannot be read
 * (warned). */
static int start_table(struct backfill *bf, const char *name, char **after, uint16_t nafter,
                       bool taken_over, struct err *e)
{
	struct backfill_table *t;
	struct err why;
	int rc =
	    backfill_table_open(bf->bc, bf->cfg.publication, bf->server_version, name, &t, &why);

	if (rc <= 0 || (after && t->npk != nafter)) {
		free_keys(after, nafter);
		if (rc < 0) {
			*e = why;
			return -1;
		}
		if (rc > 0) {
			after = NULL; /* the key changed meanwhile: from the start */
			nafter = 0;
		} else {
			log_warn("on-demand snapshot of %s refused: %s", name, why.msg);
			return 0;
		}
	}
	bf->t = t;
	bf->ri = bf->cfg.prepare(bf->cfg.ctx, bf->rels, t->rel, e);
	if (bf->ri == NULL)
		return -1;
	bf->after = after;
	bf->chunk_no = 0;
	bf->rows_done = 0;
	bf->started_ms = now_ms();
	log_info("on-demand snapshot of %s.%s: %s", t->rel->nspname, t->rel->relname,
	         taken_over ? "taken over from the stream's watermarks" : "started");
	return start_chunk(bf, e) < 0 ? -1 : 1;
}

/* Nothing in flight: start the next queued table that can be read. */
static int next_table(struct backfill *bf, struct err *e)
{
	while (bf->t == NULL && bf->nqueue > 0) {
		char *name = bf->queue[0];
		int rc;

		memmove(bf->queue, bf->queue + 1, (bf->nqueue - 1) * sizeof *bf->queue);
		bf->nqueue--;
		rc = start_table(bf, name, NULL, 0, false, e);
		free(name);
		if (rc < 0)
			return -1;
		if (rc == 0)
			drop_table(bf);
	}
	return 0;
}

bool backfill_next_row(struct backfill *bf, const struct relinfo **ri, struct pgo_tuple *tup)
{
	while (bf->emit_next < bf->chunk.nrows) {
		int r = bf->emit_next++;

		if (bf->gone[r])
			continue;
		*ri = bf->ri;
		*tup = (struct pgo_tuple){.ncols = bf->chunk.ncols,
		                          .cols = &bf->chunk.vals[(size_t)r * bf->chunk.ncols]};
		bf->rows_done++;
		return true;
	}
	return false;
}

int backfill_chunk_done(struct backfill *bf, struct err *e)
{
	int last = bf->chunk.nrows - 1;

	if (bf->unsettled) {
		/* The same chunk again, after a pause that grows (1, 2, 4 ... ms)
		 * so that a transaction stuck behind its standby does not fill
		 * the WAL with watermarks. */
		int64_t waited = now_ms() - bf->unsettled_since;
		int64_t pause = waited < 1                    ? 1
		                : waited > UNSETTLED_PAUSE_MS ? UNSETTLED_PAUSE_MS
		                                              : waited;
		struct timespec ts = {0, (long)pause * 1000000L};

		nanosleep(&ts, NULL);
		return start_chunk(bf, e);
	}
	if (bf->chunk.nrows < bf->cfg.chunk_rows) {
		log_info("on-demand snapshot of %s.%s done: %lld rows in %llu chunks, %.1f s",
		         bf->t->rel->nspname, bf->t->rel->relname, (long long)bf->rows_done,
		         (unsigned long long)bf->chunk_no,
		         (double)(now_ms() - bf->started_ms) / 1000);
		drop_table(bf);
		return next_table(bf, e);
	}
	free_after(bf);
	bf->after = calloc(bf->t->npk, sizeof *bf->after);
	for (uint16_t i = 0; bf->after && i < bf->t->npk; i++) {
		const struct pgo_value *v = row_val(bf, last, bf->t->pk[i]);

		if ((bf->after[i] = malloc(v->len + 1)) == NULL)
			return err_set(e, "could not continue the snapshot: out of memory");
		memcpy(bf->after[i], v->data, v->len);
		bf->after[i][v->len] = '\0';
	}
	if (bf->after == NULL)
		return err_set(e, "could not continue the snapshot: out of memory");
	return start_chunk(bf, e);
}

/* ---- messages ------------------------------------------------------------- */

/* Split a "\n"-separated list into queue entries (names), up to the bound. */
static void queue_names(struct backfill *bf, const char *list)
{
	while (*list) {
		size_t n = strcspn(list, "\n,");

		if (n > 0 && bf->nqueue < MAX_QUEUED) {
			char *name = malloc(n + 1);

			if (name) {
				memcpy(name, list, n);
				name[n] = '\0';
				bf->queue[bf->nqueue++] = name;
			}
		} else if (n > 0) {
			log_warn("on-demand snapshot of %.*s refused: %d tables are queued already",
			         (int)n, list, MAX_QUEUED);
		}
		list += n;
		if (*list)
			list++;
	}
}

static int on_request(struct backfill *bf, const uint8_t *content, uint32_t len, uint64_t lsn,
                      struct err *e)
{
	static const char *const FIELDS[] = {"snapshot", "slot"};
	char at[LSN_STR_MAX];
	struct buf f;
	struct err why;
	const char *tables, *slot;
	size_t before = bf->nqueue;

	lsn_format(lsn, at);
	buf_init(&f, 0);
	if (backfill_parse(bf->bc, content, len, FIELDS, 2, &f, &why) < 0) {
		buf_reset(&f);
		if (why.kind == ERR_TRANSIENT) {
			*e = why;
			return -1;
		}
		log_warn("ignoring the snapshot signal at %s: %s (expected {\"snapshot\": "
		         "[\"schema.table\", ...]})",
		         at, why.msg);
		return 0;
	}
	tables = f.data;
	slot = tables + strlen(tables) + 1;
	if (*slot && strcmp(slot, bf->cfg.slot) != 0) {
		buf_reset(&f);
		return 0; /* another pgstream's */
	}
	if (*tables == '\0')
		log_warn("ignoring the snapshot signal at %s: no tables in \"snapshot\"", at);
	/* Refuse what cannot be read now, with the reason, rather than when
	 * its turn comes. */
	queue_names(bf, tables);
	buf_reset(&f);
	for (size_t i = before; i < bf->nqueue;) {
		struct backfill_table *t;
		int rc = backfill_table_open(bf->bc, bf->cfg.publication, bf->server_version,
		                             bf->queue[i], &t, &why);

		if (rc < 0) {
			*e = why;
			return -1;
		}
		backfill_table_free(t);
		if (rc == 0) {
			log_warn("on-demand snapshot of %s refused: %s", bf->queue[i], why.msg);
			free(bf->queue[i]);
			memmove(bf->queue + i, bf->queue + i + 1,
			        (bf->nqueue - i - 1) * sizeof *bf->queue);
			bf->nqueue--;
			continue;
		}
		log_info("on-demand snapshot of %s requested at %s", bf->queue[i], at);
		i++;
	}
	return next_table(bf, e);
}

/* A watermark of another run (a pgstream before a restart, or this one
 * before a reconnect): with nothing in flight, take its snapshot over. */
static int take_over(struct backfill *bf, const uint8_t *content, uint32_t len, struct err *e)
{
	static const char *const FIELDS[] = {"slot", "table", "after", "queue"};
	const char *slot, *table, *after, *queue;
	char **keys = NULL;
	uint16_t npk;
	struct backfill_table *t;
	struct buf f;
	struct err why;
	int rc;

	buf_init(&f, 0);
	if (backfill_parse(bf->bc, content, len, FIELDS, 4, &f, &why) < 0) {
		buf_reset(&f);
		if (why.kind == ERR_TRANSIENT) {
			*e = why;
			return -1;
		}
		return 0; /* not one of ours */
	}
	slot = f.data;
	table = slot + strlen(slot) + 1;
	after = table + strlen(table) + 1;
	queue = after + strlen(after) + 1;
	if (strcmp(slot, bf->cfg.slot) != 0 || *table == '\0') {
		buf_reset(&f);
		return 0;
	}
	queue_names(bf, queue);
	rc = backfill_table_open(bf->bc, bf->cfg.publication, bf->server_version, table, &t, &why);
	if (rc < 0) {
		buf_reset(&f);
		*e = why;
		return -1;
	}
	if (rc == 0) {
		log_warn("on-demand snapshot of %s cannot be taken over: %s", table, why.msg);
		buf_reset(&f);
		return next_table(bf, e);
	}
	if (*after) {
		/* The key the chunk started after; a key that does not split
		 * into its columns (a newline inside) starts the table over:
		 * repeats, never a gap. */
		uint16_t n = 0;
		const char *p = after;

		keys = calloc(t->npk, sizeof *keys);
		while (keys && n < t->npk && *p) {
			size_t k = strcspn(p, "\n");

			keys[n] = malloc(k + 1);
			if (keys[n] == NULL)
				break;
			memcpy(keys[n], p, k);
			keys[n++][k] = '\0';
			p += k + (p[k] == '\n');
		}
		if (keys == NULL || n != t->npk || *p) {
			free_keys(keys, n);
			keys = NULL;
		}
	}
	npk = t->npk;
	backfill_table_free(t);
	rc = start_table(bf, table, keys, keys ? npk : 0, true, e);
	buf_reset(&f);
	if (rc < 0)
		return -1;
	if (rc == 0) {
		drop_table(bf);
		return next_table(bf, e);
	}
	return 0;
}

int backfill_on_message(struct backfill *bf, const char *prefix, const uint8_t *content,
                        uint32_t len, uint64_t lsn, struct err *e)
{
	if (strcmp(prefix, BACKFILL_REQUEST_PREFIX) == 0)
		return on_request(bf, content, len, lsn, e) < 0 ? -1 : BACKFILL_PASS;
	if (strcmp(prefix, BACKFILL_WATERMARK_PREFIX) != 0)
		return BACKFILL_PASS;
	if (bf->low && len == strlen(bf->low) && memcmp(content, bf->low, len) == 0) {
		bf->window = true;
		return BACKFILL_CONSUMED;
	}
	if (bf->high && len == strlen(bf->high) && memcmp(content, bf->high, len) == 0) {
		bf->window = false;
		return BACKFILL_EMIT;
	}
	if (bf->t == NULL && take_over(bf, content, len, e) < 0)
		return -1;
	return BACKFILL_CONSUMED;
}

int backfill_request(const char *database_url, const char *slot, const char *tables, struct err *e)
{
	struct backfill_conn *bc = backfill_conn_new(database_url);
	struct buf b;
	char at[LSN_STR_MAX];
	uint64_t lsn = 0;
	int rc, n = 0;

	if (bc == NULL)
		return err_set(e, "could not request a snapshot: out of memory");
	buf_init(&b, 0);
	buf_puts(&b, "{\"snapshot\":[");
	for (const char *p = tables; *p;) {
		size_t k = strcspn(p, ",\n");

		if (k > 0) {
			if (n++)
				buf_putc(&b, ',');
			json_write_string(&b, p, k);
		}
		p += k + (p[k] != '\0');
	}
	buf_puts(&b, "],\"slot\":");
	json_write_string(&b, slot, strlen(slot));
	buf_putc(&b, '}');
	if (!buf_ok(&b))
		rc = err_set(e, "could not request a snapshot: out of memory");
	else if (n == 0)
		rc = err_set(e, "invalid options: pgstream snapshot needs --table SCHEMA.TABLE");
	else if ((rc = backfill_server_version(bc, e)) >= 0 && rc < 140000)
		rc = err_set(e,
		             "could not request a snapshot: on-demand snapshots need PostgreSQL 14 "
		             "or newer (pgoutput sends logical messages from 14 on)");
	else if (rc >= 0)
		rc = backfill_emit(bc, BACKFILL_REQUEST_PREFIX, b.data, &lsn, e);
	if (rc == 0) {
		lsn_format(lsn, at);
		printf("snapshot requested at %s: %s\n", at, b.data);
	}
	buf_reset(&b);
	backfill_conn_free(bc);
	return rc;
}
