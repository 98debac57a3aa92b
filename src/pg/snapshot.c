/*
 * snapshot.c — the published tables' rows as of an exported snapshot; see
 * snapshot.h.
 *
 * Each worker runs a small state machine over libpq's asynchronous calls:
 * IDLE (take the next chunk, send its COPY) → STARTING (wait for the
 * CopyOut response) → COPYING (rows until the end of the copy) → ENDING
 * (the command's completion) → IDLE. snapshot_next() steps the workers in
 * turn, starting after the one that gave the last row, so no chunk starves.
 */
#include "pg/snapshot.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/conn_int.h"
#include "pg/copytext.h"
#include "util/buf.h"
#include "util/log.h"

/* ctid ranges are scanned by range from PostgreSQL 14 (TID Range Scan);
 * before that each chunk would scan the whole table. */
#define TID_RANGE_SERVER_VERSION 140000
#define COLUMN_LIST_SERVER_VERSION 150000
/* Chunk sizes in pages (8 kB each by default) when not set: small enough
 * that every worker gets several, large enough that a chunk's query costs
 * nothing next to its rows. */
#define CHUNK_PAGES_MIN 1024
#define CHUNK_PAGES_MAX 16384
#define CHUNKS_PER_WORKER 4
/* Rows taken from one worker before the next one's turn. */
#define ROWS_PER_TURN 256

struct chunk {
	size_t table;
	uint32_t from_page; /* first page */
	uint32_t to_page;   /* one past the last; 0: to the end of the table */
};

enum worker_state { W_IDLE, W_STARTING, W_COPYING, W_ENDING, W_DONE };

struct worker {
	PGconn *pg;
	enum worker_state state;
	size_t chunk;     /* the chunk being copied */
	bool want_input;  /* waiting for the socket */
};

struct table_plan {
	char *copy_whole; /* COPY of the whole table, or NULL: by query */
	char *select;     /* "SELECT cols FROM [ONLY] t" */
	char *filter;     /* the row filter, or NULL */
	uint32_t pages;
};

struct snapshot_reader {
	struct worker *workers;
	int nworkers;
	int turn;           /* the worker whose rows come next */
	int rows_this_turn;
	struct snapshot_table *tables;
	struct table_plan *plans;
	size_t ntables;
	struct chunk *chunks;
	size_t nchunks, next_chunk;
	struct pgo_value *vals; /* room for the widest table */
	uint16_t max_cols;
	char *row; /* the last row, from PQgetCopyData */
	int server_version;
};

/* ---- connecting and listing the tables ---------------------------------- */

static PGresult *exec(PGconn *pg, const char *sql, int nparams, const char *const *params,
                      ExecStatusType want, const char *what, struct err *e)
{
	PGresult *res = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != want) {
		conn_result_error(pg, res, e, what);
		PQclear(res);
		return NULL;
	}
	return res;
}

/* Commands without parameters, several at once. */
static int run(PGconn *pg, const char *sql, const char *what, struct err *e)
{
	PGresult *res = PQexec(pg, sql);
	int rc = 0;

	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = conn_result_error(pg, res, e, what);
	PQclear(res);
	return rc;
}

/* One worker: connected, in a transaction that sees the snapshot. A role's
 * statement or idle timeouts would cut a long copy short: they are off
 * here, which changes nothing of how values are written. */
static int connect_worker(struct worker *w, const struct snapshot_options *o, struct err *e)
{
	char sql[160];

	w->pg = conn_connect(o->database_url, false, e);
	if (w->pg == NULL)
		return -1;
	if (PQstatus(w->pg) != CONNECTION_OK)
		return conn_result_error(w->pg, NULL, e, "connect for the snapshot");
	snprintf(sql, sizeof sql, "SET TRANSACTION SNAPSHOT '%s'", o->snapshot);
	if (run(w->pg,
	        "SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0; "
	        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
	        "start the snapshot's transaction", e) < 0 ||
	    run(w->pg, sql, "import the slot's snapshot", e) < 0)
		return -1;
	return 0;
}

static char *dup_str(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);

	return d ? memcpy(d, s, n) : NULL;
}

static char *dup_buf(struct buf *b)
{
	char *s = buf_ok(b) ? dup_str(b->data ? b->data : "") : NULL;

	buf_reset(b);
	return s;
}

/* The published tables, as of the snapshot. Pages are counted from the
 * files, not pg_class.relpages, which a table never vacuumed or analyzed
 * leaves at 0; a partitioned root's are its largest partition's, since its
 * chunks' ctid ranges apply to each partition. */
static const char TABLES_SQL[] =
    "SELECT c.oid, n.nspname, c.relname, c.relreplident, c.relkind, "
    " (CASE WHEN c.relkind = 'p' THEN (SELECT coalesce(max(pg_relation_size(t.relid)), 0) "
    "   FROM pg_partition_tree(c.oid) t) ELSE pg_relation_size(c.oid) END) "
    "   / current_setting('block_size')::int, "
    " CASE WHEN c.relkind = 'p' THEN (SELECT sum(k.reltuples) FROM pg_partition_tree(c.oid) t "
    "   JOIN pg_class k ON k.oid = t.relid WHERE k.relkind = 'r' AND k.reltuples > 0) "
    "   ELSE c.reltuples END, "
    " %s "
    "FROM pg_publication_tables pt "
    "JOIN pg_namespace n ON n.nspname = pt.schemaname "
    "JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename "
    "WHERE pt.pubname = $1 ORDER BY 2, 3";

/* The columns pgoutput's Relation message lists, with its key flags: the
 * replica identity's columns, every column under FULL. $2 is the column
 * list (NULL: every column but generated ones). */
static const char COLUMNS_SQL[] =
    "SELECT a.attname, a.atttypid, a.atttypmod, "
    " c.relreplident = 'f' OR coalesce(a.attnum = ANY (i.indkey), false) "
    "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "LEFT JOIN pg_index i ON i.indrelid = c.oid AND "
    " ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident)) "
    "WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped "
    " AND CASE WHEN $2::name[] IS NULL THEN a.attgenerated = '' "
    "      ELSE a.attname = ANY ($2::name[]) END "
    "ORDER BY a.attnum";

static int load_columns(PGconn *pg, struct relation *rel, const char *attnames, struct err *e)
{
	char oid[16];
	const char *params[2] = {oid, attnames};
	PGresult *res;
	int n;

	snprintf(oid, sizeof oid, "%u", rel->oid);
	res = exec(pg, COLUMNS_SQL, 2, params, PGRES_TUPLES_OK, "list the snapshot's columns", e);
	if (res == NULL)
		return -1;
	n = PQntuples(res);
	if (n > UINT16_MAX) {
		PQclear(res);
		return err_set(e, "could not read table %s.%s: more columns than pgoutput can send",
		               rel->nspname, rel->relname);
	}
	rel->cols = n ? calloc((size_t)n, sizeof *rel->cols) : NULL;
	if (n && rel->cols == NULL) {
		PQclear(res);
		return err_set(e, "could not plan the snapshot: out of memory");
	}
	rel->ncols = (uint16_t)n;
	for (int i = 0; i < n; i++) {
		struct relcol *c = &rel->cols[i];

		c->name = dup_str(PQgetvalue(res, i, 0));
		c->typoid = (uint32_t)strtoul(PQgetvalue(res, i, 1), NULL, 10);
		c->typmod = (int32_t)strtol(PQgetvalue(res, i, 2), NULL, 10);
		c->flags = PQgetvalue(res, i, 3)[0] == 't' ? RELCACHE_COL_KEY : 0;
		if (c->name == NULL) {
			PQclear(res);
			return err_set(e, "could not plan the snapshot: out of memory");
		}
	}
	PQclear(res);
	return 0;
}

/* The SQL that reads table t: "COPY t (cols) TO STDOUT" when one chunk
 * covers it unfiltered (the fastest path, no executor), else a SELECT that
 * each chunk completes with its ctid range. */
static int plan_sql(PGconn *pg, const struct relation *rel, char relkind, bool whole,
                    struct table_plan *plan, struct err *e)
{
	struct buf cols, sql;
	char *nsp = PQescapeIdentifier(pg, rel->nspname, strlen(rel->nspname));
	char *name = PQescapeIdentifier(pg, rel->relname, strlen(rel->relname));
	bool ok = nsp && name;

	buf_init(&cols, 0);
	buf_init(&sql, 0);
	for (uint16_t i = 0; ok && i < rel->ncols; i++) {
		char *col = PQescapeIdentifier(pg, rel->cols[i].name, strlen(rel->cols[i].name));

		ok = col != NULL;
		if (ok)
			buf_printf(&cols, "%s%s", i ? ", " : "", col);
		PQfreemem(col);
	}
	if (ok && whole && relkind == 'r' && plan->filter == NULL && rel->ncols > 0) {
		buf_printf(&sql, "COPY %s.%s (%s) TO STDOUT", nsp, name, cols.data);
		plan->copy_whole = dup_buf(&sql);
		ok = plan->copy_whole != NULL;
	} else if (ok) {
		/* ONLY: a table's inheritance children are published (and
		 * listed) on their own; a partitioned root is read with its
		 * partitions, as pgoutput sends their rows under its name. */
		buf_printf(&sql, "SELECT %s FROM %s%s.%s", rel->ncols ? cols.data : "",
		           relkind == 'p' ? "" : "ONLY ", nsp, name);
		plan->select = dup_buf(&sql);
		ok = plan->select != NULL;
	}
	buf_reset(&cols);
	buf_reset(&sql);
	PQfreemem(nsp);
	PQfreemem(name);
	return ok ? 0 : err_set(e, "could not plan the snapshot: out of memory");
}

static int add_chunk(struct snapshot_reader *r, size_t table, uint32_t from, uint32_t to,
                     size_t *cap)
{
	if (r->nchunks == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct chunk *n = realloc(r->chunks, ncap * sizeof *n);

		if (n == NULL)
			return -1;
		r->chunks = n;
		*cap = ncap;
	}
	r->chunks[r->nchunks++] = (struct chunk){table, from, to};
	r->tables[table].chunks++;
	return 0;
}

static uint32_t chunk_pages_for(const struct snapshot_options *o, uint32_t pages)
{
	uint32_t n = pages / ((uint32_t)o->workers * CHUNKS_PER_WORKER);

	if (o->chunk_pages)
		return o->chunk_pages;
	return n < CHUNK_PAGES_MIN ? CHUNK_PAGES_MIN : n > CHUNK_PAGES_MAX ? CHUNK_PAGES_MAX : n;
}

static int load_tables(struct snapshot_reader *r, const struct snapshot_options *o,
                       struct err *e)
{
	PGconn *pg = r->workers[0].pg;
	char sql[sizeof TABLES_SQL + 64];
	const char *params[1] = {o->publication};
	PGresult *res;
	size_t cap = 0;
	int n;

	snprintf(sql, sizeof sql, TABLES_SQL,
	         o->server_version >= COLUMN_LIST_SERVER_VERSION ? "pt.attnames, pt.rowfilter"
	                                                         : "NULL, NULL");
	res = exec(pg, sql, 1, params, PGRES_TUPLES_OK, "list the publication's tables", e);
	if (res == NULL)
		return -1;
	n = PQntuples(res);
	r->tables = n ? calloc((size_t)n, sizeof *r->tables) : NULL;
	r->plans = n ? calloc((size_t)n, sizeof *r->plans) : NULL;
	if (n && (r->tables == NULL || r->plans == NULL)) {
		PQclear(res);
		return err_set(e, "could not plan the snapshot: out of memory");
	}
	for (int i = 0; i < n; i++) {
		struct snapshot_table *t = &r->tables[i];
		struct table_plan *plan = &r->plans[i];
		struct relation *rel = calloc(1, sizeof *rel);
		char relkind = PQgetvalue(res, i, 4)[0];
		double est = PQgetisnull(res, i, 6) ? -1 : strtod(PQgetvalue(res, i, 6), NULL);
		uint32_t per;
		bool tid_ranges;

		r->ntables++;
		t->rel = rel;
		if (rel == NULL)
			goto fail;
		rel->oid = (uint32_t)strtoul(PQgetvalue(res, i, 0), NULL, 10);
		rel->nspname = dup_str(PQgetvalue(res, i, 1));
		rel->relname = dup_str(PQgetvalue(res, i, 2));
		rel->replident = PQgetvalue(res, i, 3)[0];
		plan->pages = (uint32_t)strtoul(PQgetvalue(res, i, 5), NULL, 10);
		/* 0 rows in pg_class of a table with pages: never analyzed. */
		t->rows_estimated = est > 0 || plan->pages == 0 ? (int64_t)(est > 0 ? est : 0) : -1;
		if (!PQgetisnull(res, i, 8) && (plan->filter = dup_str(PQgetvalue(res, i, 8))) == NULL)
			goto fail;
		if (rel->nspname == NULL || rel->relname == NULL ||
		    load_columns(pg, rel, PQgetisnull(res, i, 7) ? NULL : PQgetvalue(res, i, 7), e) < 0)
			goto fail;
		if (rel->ncols > r->max_cols)
			r->max_cols = rel->ncols;
		/* One worker gains nothing from chunks, and the whole table's
		 * COPY is the server's fastest read. */
		per = chunk_pages_for(o, plan->pages);
		tid_ranges = o->server_version >= TID_RANGE_SERVER_VERSION && plan->pages >= 2 * per &&
		             (o->workers > 1 || o->chunk_pages);
		if (plan_sql(pg, rel, relkind, !tid_ranges, plan, e) < 0)
			goto fail;
		if (!tid_ranges) {
			if (add_chunk(r, (size_t)i, 0, 0, &cap) < 0)
				goto fail;
			continue;
		}
		/* The last chunk is open-ended: pages added since the count
		 * (none in the snapshot, but the files may have grown) are
		 * read too. */
		for (uint32_t from = 0; from < plan->pages; from += per)
			if (add_chunk(r, (size_t)i, from, from + per >= plan->pages ? 0 : from + per,
			              &cap) < 0)
				goto fail;
	}
	PQclear(res);
	return 0;
fail:
	PQclear(res);
	return e->msg[0] ? -1 : err_set(e, "could not plan the snapshot: out of memory");
}

struct snapshot_reader *snapshot_open(const struct snapshot_options *o, struct err *e)
{
	struct snapshot_reader *r = calloc(1, sizeof *r);
	int n = o->workers < 1 ? 1 : o->workers;

	e->msg[0] = '\0';
	if (r == NULL || (r->workers = calloc((size_t)n, sizeof *r->workers)) == NULL) {
		free(r);
		err_set(e, "could not start the snapshot: out of memory");
		return NULL;
	}
	r->server_version = o->server_version;
	for (int i = 0; i < n; i++) {
		r->nworkers++;
		if (connect_worker(&r->workers[i], o, e) < 0)
			goto fail;
	}
	if (load_tables(r, o, e) < 0)
		goto fail;
	if (r->max_cols && (r->vals = calloc(r->max_cols, sizeof *r->vals)) == NULL) {
		err_set(e, "could not start the snapshot: out of memory");
		goto fail;
	}
	return r;
fail:
	snapshot_close(r);
	return NULL;
}

void snapshot_close(struct snapshot_reader *r)
{
	if (r == NULL)
		return;
	for (int i = 0; i < r->nworkers; i++)
		PQfinish(r->workers[i].pg); /* ends the read-only transaction */
	for (size_t i = 0; i < r->ntables; i++) {
		relation_free(r->tables[i].rel);
		free(r->plans[i].copy_whole);
		free(r->plans[i].select);
		free(r->plans[i].filter);
	}
	PQfreemem(r->row);
	free(r->workers);
	free(r->tables);
	free(r->plans);
	free(r->chunks);
	free(r->vals);
	free(r);
}

size_t snapshot_ntables(const struct snapshot_reader *r)
{
	return r->ntables;
}

const struct snapshot_table *snapshot_table(const struct snapshot_reader *r, size_t i)
{
	return &r->tables[i];
}

/* ---- copying ------------------------------------------------------------ */

static int send_chunk(struct snapshot_reader *r, struct worker *w, struct err *e)
{
	const struct chunk *c = &r->chunks[w->chunk];
	const struct table_plan *plan = &r->plans[c->table];
	struct buf sql;
	int ok;

	buf_init(&sql, 0);
	if (plan->copy_whole) {
		buf_puts(&sql, plan->copy_whole);
	} else {
		const char *and = " WHERE ";

		buf_printf(&sql, "COPY (%s", plan->select);
		if (plan->filter) {
			buf_printf(&sql, "%s(%s)", and, plan->filter);
			and = " AND ";
		}
		if (c->from_page || c->to_page)
			buf_printf(&sql, "%sctid >= '(%u,0)'::tid", and, c->from_page);
		if (c->to_page)
			buf_printf(&sql, " AND ctid < '(%u,0)'::tid", c->to_page);
		buf_puts(&sql, ") TO STDOUT");
	}
	if (!buf_ok(&sql)) {
		buf_reset(&sql);
		return err_set(e, "could not read the snapshot: out of memory");
	}
	ok = PQsendQuery(w->pg, sql.data);
	buf_reset(&sql);
	if (!ok)
		return conn_result_error(w->pg, NULL, e, "read the snapshot");
	w->state = W_STARTING;
	return 0;
}

/* Advance worker w as far as it goes without waiting. Returns 1 with
 * r->row set for a row, 0 when it waits for input or is done, -1 on
 * failure. */
static int step(struct snapshot_reader *r, struct worker *w, struct err *e)
{
	PGresult *res;
	ExecStatusType st;

	for (;;) {
		switch (w->state) {
		case W_IDLE:
			if (r->next_chunk == r->nchunks) {
				w->state = W_DONE;
				return 0;
			}
			w->chunk = r->next_chunk++;
			if (send_chunk(r, w, e) < 0)
				return -1;
			break;
		case W_STARTING:
		case W_ENDING:
			if (PQisBusy(w->pg)) {
				w->want_input = true;
				return 0;
			}
			res = PQgetResult(w->pg);
			st = PQresultStatus(res);
			if (res == NULL && w->state == W_ENDING) {
				r->tables[r->chunks[w->chunk].table].chunks_done++;
				w->state = W_IDLE;
			} else if (st == PGRES_COPY_OUT && w->state == W_STARTING) {
				w->state = W_COPYING;
			} else if (st == PGRES_COMMAND_OK && w->state == W_ENDING) {
				/* the copy's completion; NULL follows */
			} else {
				conn_result_error(w->pg, res, e, "read the snapshot");
				PQclear(res);
				return -1;
			}
			PQclear(res);
			break;
		case W_COPYING: {
			char *row;
			int n = PQgetCopyData(w->pg, &row, 1);

			if (n > 0) {
				PQfreemem(r->row);
				r->row = row;
				return n;
			}
			if (n == 0) {
				w->want_input = true;
				return 0;
			}
			if (n == -2)
				return conn_result_error(w->pg, NULL, e, "read the snapshot");
			w->state = W_ENDING;
			break;
		}
		case W_DONE:
			return 0;
		}
	}
}

int snapshot_next(struct snapshot_reader *r, size_t *table, struct pgo_tuple *tup,
                  struct err *e)
{
	int done = 0;

	for (int k = 0; k < r->nworkers; k++) {
		struct worker *w;
		int n;

		if (r->rows_this_turn >= ROWS_PER_TURN) {
			r->turn = (r->turn + 1) % r->nworkers;
			r->rows_this_turn = 0;
		}
		w = &r->workers[r->turn];
		if (!w->want_input && (n = step(r, w, e)) != 0) {
			const struct chunk *c = &r->chunks[w->chunk];
			struct snapshot_table *t = &r->tables[c->table];

			if (n < 0)
				return -1;
			if (copytext_split(r->row, (size_t)n, r->vals, t->rel->ncols, e) < 0)
				return -1;
			t->rows_done++;
			r->rows_this_turn++;
			*table = c->table;
			*tup = (struct pgo_tuple){.ncols = t->rel->ncols, .cols = r->vals};
			return SNAPSHOT_ROW;
		}
		if (w->state == W_DONE)
			done++;
		r->turn = (r->turn + 1) % r->nworkers;
		r->rows_this_turn = 0;
	}
	return done == r->nworkers ? SNAPSHOT_DONE : SNAPSHOT_WAIT;
}

int snapshot_pollfds(const struct snapshot_reader *r, struct pollfd *fds, int max)
{
	int n = 0;

	for (int i = 0; i < r->nworkers && n < max; i++)
		if (r->workers[i].want_input)
			fds[n++] = (struct pollfd){.fd = PQsocket(r->workers[i].pg), .events = POLLIN};
	return n;
}

int snapshot_input(struct snapshot_reader *r, const struct pollfd *fds, int n, struct err *e)
{
	for (int i = 0; i < n; i++) {
		if (!(fds[i].revents & (POLLIN | POLLERR | POLLHUP)))
			continue;
		for (int k = 0; k < r->nworkers; k++) {
			struct worker *w = &r->workers[k];

			if (!w->want_input || PQsocket(w->pg) != fds[i].fd)
				continue;
			if (!PQconsumeInput(w->pg))
				return conn_result_error(w->pg, NULL, e, "read the snapshot");
			w->want_input = false;
		}
	}
	return 0;
}
