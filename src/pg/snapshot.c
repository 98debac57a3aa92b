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
#include "pg/pubtable.h"
#include "util/buf.h"
#include "util/log.h"

/* ctid ranges are scanned by range from PostgreSQL 14 (TID Range Scan);
 * before that each chunk would scan the whole table. */
#define TID_RANGE_SERVER_VERSION 140000
/* Chunk sizes in pages (8 kB each by default) when not set: small enough
 * that every worker gets several, large enough that a chunk's query costs
 * nothing next to its rows. */
#define CHUNK_PAGES_MIN   1024
#define CHUNK_PAGES_MAX   16384
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
	size_t chunk;    /* the chunk being copied */
	bool want_input; /* waiting for the socket */
};

struct snapshot_reader {
	struct worker *workers;
	int nworkers;
	int turn; /* the worker whose rows come next */
	int rows_this_turn;
	struct pubtable *pub; /* what the publication sends of each table */
	struct snapshot_table *tables;
	size_t ntables;
	struct chunk *chunks;
	size_t nchunks, next_chunk;
	struct pgo_value *vals; /* room for the widest table */
	uint16_t max_cols;
	char *row; /* the last row, from PQgetCopyData */
	int server_version;
};

/* ---- connecting and listing the tables ---------------------------------- */

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

static int load_tables(struct snapshot_reader *r, const struct snapshot_options *o, struct err *e)
{
	size_t cap = 0;

	if (pubtable_list(r->workers[0].pg, o->publication, o->server_version, NULL, NULL, &r->pub,
	                  &r->ntables, e) < 0)
		return -1;
	if (r->ntables && (r->tables = calloc(r->ntables, sizeof *r->tables)) == NULL)
		return err_set(e, "could not plan the snapshot: out of memory");
	for (size_t i = 0; i < r->ntables; i++) {
		const struct pubtable *pt = &r->pub[i];
		struct snapshot_table *t = &r->tables[i];
		uint32_t per = chunk_pages_for(o, pt->pages);
		/* One worker gains nothing from chunks, and the whole table's
		 * COPY is the server's fastest read. */
		bool tid_ranges = o->server_version >= TID_RANGE_SERVER_VERSION &&
		                  pt->pages >= 2 * per && (o->workers > 1 || o->chunk_pages);

		t->rel = pt->rel;
		t->rows_estimated = pt->rows_estimated;
		t->whole =
		    !tid_ranges && pt->relkind == 'r' && pt->filter == NULL && pt->rel->ncols;
		if (pt->rel->ncols > r->max_cols)
			r->max_cols = pt->rel->ncols;
		if (!tid_ranges) {
			if (add_chunk(r, i, 0, 0, &cap) < 0)
				return err_set(e, "could not plan the snapshot: out of memory");
			continue;
		}
		/* The last chunk is open-ended: pages added since the count
		 * (none in the snapshot, but the files may have grown) are
		 * read too. */
		for (uint32_t from = 0; from < pt->pages; from += per)
			if (add_chunk(r, i, from, from + per >= pt->pages ? 0 : from + per, &cap) <
			    0)
				return err_set(e, "could not plan the snapshot: out of memory");
	}
	return 0;
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
	pubtable_free(r->pub, r->ntables);
	PQfreemem(r->row);
	free(r->workers);
	free(r->tables);
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

/* "COPY t (cols) TO STDOUT" when one chunk covers an unfiltered table (the
 * fastest path, no executor), else a SELECT with the row filter and the
 * chunk's ctid range. */
static int send_chunk(struct snapshot_reader *r, struct worker *w, struct err *e)
{
	const struct chunk *c = &r->chunks[w->chunk];
	const struct pubtable *pt = &r->pub[c->table];
	struct buf sql;
	int ok;

	buf_init(&sql, 0);
	if (r->tables[c->table].whole) {
		buf_printf(&sql, "COPY %s (%s) TO STDOUT", pt->from + strlen("ONLY "), pt->columns);
	} else {
		const char *and = " WHERE ";

		buf_printf(&sql, "COPY (SELECT %s FROM %s", pt->columns, pt->from);
		if (pt->filter) {
			buf_printf(&sql, "%s(%s)", and, pt->filter);
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

int snapshot_next(struct snapshot_reader *r, size_t *table, struct pgo_tuple *tup, struct err *e)
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
			fds[n++] =
			    (struct pollfd){.fd = PQsocket(r->workers[i].pg), .events = POLLIN};
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
