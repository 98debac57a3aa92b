/*
 * conn.c — opening the replication connection and preparing to stream.
 *
 * Owns the conninfo rules (replication=database, session settings that fix
 * the text form of values), the server checks that turn a confusing failure
 * later into a clear one now, slot/publication management, and the socket
 * settings of the connection (the receive buffer for the hold, pg/pace.c).
 */
#include "pg/conn.h"

#include <arpa/inet.h>
#include <errno.h>
/* Not <netinet/tcp.h>: both define struct tcp_info, and glibc's lacks the
 * byte and segment counts. */
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pg/conn_int.h"
#include "pg/identity.h"
#include "pg/pace.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/lsn.h"

/* Settings that shape the text output of values, so events never depend on
 * the server's or the role's defaults (lc_monetary=C: money as $1,234.56). */
#define SESSION_OPTIONS                                                                            \
	"-c DateStyle=ISO -c IntervalStyle=postgres -c TimeZone=UTC "                              \
	"-c extra_float_digits=3 -c bytea_output=hex -c lc_monetary=C"

#define MIN_SERVER_VERSION       100000 /* logical replication protocol: PG 10 */
#define MESSAGES_SERVER_VERSION  140000 /* pgoutput 'messages' option: PG 14 */
#define STREAMING_SERVER_VERSION 140000 /* pgoutput 'streaming' option: PG 14 */
#define TWO_PHASE_SERVER_VERSION 150000 /* pgoutput decodes at PREPARE: PG 15 */
#define ORIGIN_SERVER_VERSION    160000 /* pgoutput 'origin' option: PG 16 */
#define FAILOVER_SERVER_VERSION  170000 /* slots synchronized to standbys: PG 17 */

struct pg_conn {
	PGconn *pg;
	struct pace pace; /* read pacing (pg/pace.h), used by stream.c */
};

/* Which SQLSTATEs a retry can cure: the server going away or coming back, a
 * standby's recovery conflict, or a slot still held by a walsender that has
 * not yet noticed its client is gone (object_in_use). */
static enum err_kind sqlstate_kind(const char *state)
{
	if (state == NULL)
		return ERR_TRANSIENT; /* no SQLSTATE: the connection itself failed */
	if (strcmp(state, "55006") == 0)
		return ERR_BUSY;
	if (strncmp(state, "08", 2) == 0 || /* connection exception */
	    strcmp(state, "57P01") == 0 ||  /* admin_shutdown */
	    strcmp(state, "57P02") == 0 ||  /* crash_shutdown */
	    strcmp(state, "57P03") == 0 ||  /* cannot_connect_now */
	    strcmp(state, "53300") == 0 ||  /* too_many_connections */
	    /* On a standby (decoding there, 16+), a recovery conflict that
	     * cancelled the walsender: the reconnect streams again, or finds
	     * the slot invalidated by it and says why. */
	    strcmp(state, "40001") == 0)
		return ERR_TRANSIENT;
	return ERR_FATAL;
}

int conn_result_error(PGconn *pg, PGresult *res, struct err *e, const char *what)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorMessage(res) : "";

	if (msg == NULL || *msg == '\0')
		msg = PQerrorMessage(pg);
	if (PQstatus(pg) == CONNECTION_BAD)
		state = NULL;
	return err_setk(e, sqlstate_kind(state), "could not %s: %s", what, msg);
}

/* Run a query expected to return tuples (or a command); NULL on error. */
static PGresult *run(PGconn *pg, const char *sql, const char *what, struct err *e)
{
	PGresult *res = PQexec(pg, sql);
	ExecStatusType st = PQresultStatus(res);

	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return res;
	conn_result_error(pg, res, e, what);
	PQclear(res);
	return NULL;
}

int conn_check_url(const char *database_url, struct err *e)
{
	char *errmsg = NULL;
	PQconninfoOption *opts;

	if (database_url == NULL)
		return 0;
	opts = PQconninfoParse(database_url, &errmsg);
	if (opts == NULL) {
		/* libpq's message quotes the URI, password and all: keep only
		 * the reason. */
		char *quote = errmsg ? strstr(errmsg, " in URI") : NULL;
		if (quote)
			*quote = '\0';
		err_set(e, "invalid value for --database-url: %s",
		        errmsg ? errmsg : "out of memory");
		PQfreemem(errmsg);
		return -1;
	}
	PQconninfoFree(opts);
	return 0;
}

void conn_describe(const char *database_url, char *out, size_t outlen)
{
	PQconninfoOption *opts = PQconninfoParse(database_url ? database_url : "", NULL);
	const char *host = NULL, *port = NULL, *dbname = NULL, *user = NULL;

	for (PQconninfoOption *o = opts; o && o->keyword; o++) {
		if (o->val == NULL)
			continue;
		if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "port") == 0)
			port = o->val;
		else if (strcmp(o->keyword, "dbname") == 0)
			dbname = o->val;
		else if (strcmp(o->keyword, "user") == 0)
			user = o->val;
	}
	snprintf(out, outlen, "host=%s port=%s dbname=%s user=%s", host ? host : "(default)",
	         port ? port : "(default)", dbname ? dbname : "(default)",
	         user ? user : "(default)");
	PQconninfoFree(opts);
}

/*
 * Connect using the user's URL/conninfo with our additions: replication=
 * database (logical walsender that also takes SQL) unless asked for an
 * ordinary session, our session settings appended to any options the user
 * gave, client_encoding UTF8 and an application name.
 *
 * client_encoding is ours, not the user's: pgoutput converts names and
 * values to the client's encoding before sending them, and events are
 * UTF-8 JSON, so any other setting would corrupt text. A user's
 * client_encoding (in the URL, PGCLIENTENCODING, or -c in options) is
 * dropped or overridden: the server applies startup parameters after the
 * options string, and conn_open checks what it reports. One exception: a
 * SQL_ASCII database cannot convert, and rather than pass its bytes to a
 * UTF8 client it checks them and fails the whole stream on the first that
 * is not UTF-8 ("invalid byte sequence", in the walsender: every retry
 * fails again). With client_encoding SQL_ASCII it sends them as stored,
 * and event/utf8guard.h decides.
 */
static bool is_sql_ascii(PGconn *pg)
{
	const char *server = PQparameterStatus(pg, "server_encoding");

	return server && strcmp(server, "SQL_ASCII") == 0;
}

PGconn *conn_connect(const char *database_url, bool replication, struct err *e)
{
	PQconninfoOption *opts;
	/* libpq has about 40 keywords; ours are the last 4, then the NULL. */
	const char *keys[64], *vals[64];
	char *errmsg = NULL;
	struct buf options;
	PGconn *pg = NULL;
	int n = 0;

	opts = PQconninfoParse(database_url ? database_url : "", &errmsg);
	if (opts == NULL) {
		err_set(e, "could not parse database URL: %s", errmsg ? errmsg : "out of memory");
		PQfreemem(errmsg);
		return NULL;
	}
	buf_init(&options, 4096);
	for (PQconninfoOption *o = opts; o->keyword && n < 64 - 5; o++) {
		if (o->val == NULL || strcmp(o->keyword, "replication") == 0 ||
		    strcmp(o->keyword, "client_encoding") == 0)
			continue;
		if (strcmp(o->keyword, "options") == 0) {
			buf_puts(&options, o->val);
			buf_putc(&options, ' ');
			continue;
		}
		keys[n] = o->keyword;
		vals[n++] = o->val;
	}
	buf_puts(&options, SESSION_OPTIONS);
	if (replication)
		keys[n] = "replication", vals[n++] = "database";
	keys[n] = "options", vals[n++] = options.data;
	keys[n] = "client_encoding", vals[n++] = "UTF8";
	keys[n] = "fallback_application_name", vals[n++] = "pgstream";
	keys[n] = NULL, vals[n] = NULL;

	if (!buf_ok(&options)) {
		err_set(e, "could not build connection options: too long");
	} else {
		pg = PQconnectdbParams(keys, vals, 0);
		if (pg == NULL)
			err_set(e, "could not connect: out of memory");
		else if (PQstatus(pg) == CONNECTION_OK && is_sql_ascii(pg))
			PQsetClientEncoding(pg, "SQL_ASCII"); /* conn_open checks it took */
	}
	buf_reset(&options);
	PQconninfoFree(opts);
	return pg;
}

static int check_server(PGconn *pg, struct conn_info *info, struct err *e)
{
	PGresult *res;
	int rc = 0;

	if (info->server_version < MIN_SERVER_VERSION)
		return err_set(e,
		               "could not use server: PostgreSQL %d.%d is too old, logical "
		               "replication with pgoutput needs PostgreSQL 10 or newer",
		               info->server_version / 10000, info->server_version / 100 % 100);
	res = run(pg, "SHOW wal_level", "read wal_level", e);
	if (res == NULL)
		return -1;
	if (strcmp(PQgetvalue(res, 0, 0), "logical") != 0)
		rc = err_set(e,
		             "could not use server: wal_level is \"%s\", logical decoding needs "
		             "wal_level = logical in postgresql.conf (and a server restart)",
		             PQgetvalue(res, 0, 0));
	PQclear(res);
	return rc;
}

static int identify_system(PGconn *pg, struct conn_info *info, struct err *e)
{
	PGresult *res = run(pg, "IDENTIFY_SYSTEM", "identify system", e);

	if (res == NULL)
		return -1;
	if (PQntuples(res) != 1 || PQnfields(res) < 4 ||
	    !lsn_parse(PQgetvalue(res, 0, 2), &info->xlogpos)) {
		PQclear(res);
		return err_set(e, "could not identify system: unexpected IDENTIFY_SYSTEM reply");
	}
	PQclear(res);
	return 0;
}

/* Append "a", "s"."b" for a user's comma list of (possibly qualified) names. */
static int append_table_list(PGconn *pg, struct buf *sql, const char *tables, struct err *e)
{
	char *list = strdup(tables);
	char *save = NULL;
	int rc = 0, n = 0;

	if (list == NULL)
		return err_set(e, "could not build CREATE PUBLICATION: out of memory");
	for (char *t = strtok_r(list, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save)) {
		char *dot;
		while (*t == ' ')
			t++;
		if (*t == '\0')
			continue;
		buf_puts(sql, n++ ? ", " : "");
		dot = strchr(t, '.');
		for (char *part = t; part; part = dot ? dot + 1 : NULL) {
			char *q;
			dot = strchr(part, '.');
			if (dot)
				*dot = '\0';
			q = PQescapeIdentifier(pg, part, strlen(part));
			if (q == NULL) {
				rc = err_set(e, "could not quote table name \"%s\"", part);
				break;
			}
			buf_puts(sql, q);
			PQfreemem(q);
			if (dot)
				buf_putc(sql, '.');
		}
	}
	if (rc == 0 && n == 0)
		rc = err_set(e, "invalid value for --tables: no table names");
	free(list);
	return rc;
}

static int create_publication(PGconn *pg, const struct conn_params *p, const char *quoted,
                              struct err *e)
{
	struct buf sql;
	PGresult *res = NULL;
	int rc;

	buf_init(&sql, 1 << 20);
	buf_printf(&sql, "CREATE PUBLICATION %s FOR ", quoted);
	if (p->tables) {
		buf_puts(&sql, "TABLE ");
		rc = append_table_list(pg, &sql, p->tables, e);
	} else {
		buf_puts(&sql, "ALL TABLES");
		rc = 0;
	}
	if (rc == 0 && !buf_ok(&sql))
		rc = err_set(e, "could not build CREATE PUBLICATION: too long");
	/* In a transaction, so that the tables it would contain are known
	 * exactly (the server's own rules for FOR ALL TABLES) before it
	 * exists for anyone: a table without a replica identity in it makes
	 * the application's UPDATEs and DELETEs of that table fail. */
	if (rc == 0 && (res = run(pg, "BEGIN", "create publication", e)) == NULL)
		rc = -1;
	PQclear(res);
	res = NULL;
	if (rc == 0 && (res = run(pg, sql.data, "create publication", e)) == NULL)
		rc = -1;
	buf_clear(&sql);
	if (rc == 0) {
		int missing = 0;

		rc = identity_missing(pg, p->publication, &sql, &missing, e);
		if (rc == 0 && missing && !p->allow_no_identity)
			rc = err_set(
			    e,
			    "could not create publication %s: the server would refuse UPDATE "
			    "and DELETE on %d %s without a replica identity while published "
			    "(" IDENTITY_REMEDY ", leave %s out with --tables, or pass "
			    "--allow-no-replica-identity): %s",
			    p->publication, missing, missing == 1 ? "table" : "tables",
			    missing == 1 ? "it" : "them", sql.data ? sql.data : "");
	}
	PQclear(res);
	res = run(pg, rc == 0 ? "COMMIT" : "ROLLBACK", "create publication",
	          rc == 0 ? e : &(struct err){0});
	if (rc == 0 && res == NULL)
		rc = -1;
	if (rc == 0)
		log_info("publication created: %s", p->publication);
	PQclear(res);
	buf_reset(&sql);
	return rc;
}

/* Every start: the application's UPDATEs and DELETEs of these tables fail
 * while they are published, which pgstream cannot fix but can name. */
static int warn_identity(PGconn *pg, const struct conn_params *p, struct err *e)
{
	struct buf names;
	int missing = 0;

	buf_init(&names, 1 << 16);
	if (identity_missing(pg, p->publication, &names, &missing, e) < 0) {
		buf_reset(&names);
		return -1;
	}
	if (missing)
		log_warn("publication %s: %d %s no replica identity: %s; the server refuses "
		         "UPDATE and DELETE on %s while published: " IDENTITY_REMEDY,
		         p->publication, missing, missing == 1 ? "table has" : "tables have",
		         names.data ? names.data : "", missing == 1 ? "it" : "them");
	buf_reset(&names);
	return 0;
}

static int ensure_publication(PGconn *pg, const struct conn_params *p, struct err *e)
{
	char *lit = PQescapeLiteral(pg, p->publication, strlen(p->publication));
	char *ident = PQescapeIdentifier(pg, p->publication, strlen(p->publication));
	char sql[512];
	PGresult *res = NULL;
	int rc = -1;

	if (lit == NULL || ident == NULL || strlen(lit) > 300) {
		err_set(e, "could not quote publication name \"%s\"", p->publication);
		goto out;
	}
	snprintf(sql, sizeof sql, "SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = %s",
	         lit);
	res = run(pg, sql, "look up publication", e);
	if (res == NULL)
		goto out;
	if (PQntuples(res) == 1) {
		rc = 0;
		if (p->tables)
			log_warn(
			    "publication %s exists: --tables is ignored (it names the tables of "
			    "a publication --create-publication creates; change this one with "
			    "ALTER PUBLICATION)",
			    p->publication);
	} else if (p->create_publication)
		rc = create_publication(pg, p, ident, e);
	else
		err_set(e,
		        "publication \"%s\" does not exist: create it with "
		        "CREATE PUBLICATION %s FOR ALL TABLES; (or run pgstream with "
		        "--create-publication)",
		        p->publication, ident);
out:
	PQclear(res);
	PQfreemem(lit);
	PQfreemem(ident);
	return rc;
}

/* Why the server gave up a slot, and what to change so it does not again
 * (pg_replication_slots.invalidation_reason, 17+; 16 says only whether a
 * standby's recovery conflicted with it; before, WAL removal is the only
 * cause). */
static const char *invalidation_cause(const char *reason)
{
	if (strcmp(reason, "rows_removed") == 0)
		return "rows_removed: the primary removed catalog rows it needed; on a standby "
		       "keep hot_standby_feedback on with primary_slot_name set";
	if (strcmp(reason, "wal_level_insufficient") == 0)
		return "wal_level_insufficient: the primary's wal_level was lowered below logical; "
		       "set it back to logical and restart the primary";
	if (strcmp(reason, "idle_timeout") == 0)
		return "idle_timeout: inactive longer than idle_replication_slot_timeout; raise "
		       "it, "
		       "or keep pgstream connected";
	if (strcmp(reason, "conflict") == 0)
		return "a recovery conflict on this standby: the primary removed catalog rows it "
		       "needed, or its wal_level was lowered below logical";
	return "wal_status lost: the WAL it needed was removed, see max_slot_wal_keep_size";
}

/* Check a slot that already exists; fill its confirmed position. Returns 1
 * if the slot exists and is usable, 0 if it does not exist. */
static int check_existing_slot(PGconn *pg, const struct conn_params *p, struct conn_info *info,
                               struct err *e)
{
	char sql[512];
	PGresult *res;
	int rc = 1;
	const char *plugin, *type, *db, *pid, *status;

	snprintf(sql, sizeof sql,
	         "SELECT plugin, slot_type, database, active_pid, confirmed_flush_lsn, %s, "
	         "current_database(), %s, %s, %s FROM pg_catalog.pg_replication_slots "
	         "WHERE slot_name = '%s'",
	         info->server_version >= 130000 ? "wal_status" : "NULL",
	         info->server_version >= FAILOVER_SERVER_VERSION ? "failover" : "false",
	         info->server_version >= FAILOVER_SERVER_VERSION ? "invalidation_reason"
	         : info->server_version >= 160000 ? "CASE WHEN conflicting THEN 'conflict' END"
	                                          : "NULL",
	         info->server_version >= TWO_PHASE_SERVER_VERSION ? "two_phase" : "false", p->slot);
	res = run(pg, sql, "look up replication slot", e);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return 0;
	}
	plugin = PQgetvalue(res, 0, 0);
	type = PQgetvalue(res, 0, 1);
	db = PQgetvalue(res, 0, 2);
	pid = PQgetvalue(res, 0, 3);
	status = PQgetvalue(res, 0, 5);
	if (strcmp(type, "logical") != 0)
		rc = err_set(e,
		             "replication slot \"%s\" is a %s slot; pgstream needs a logical "
		             "slot (use another --slot name)",
		             p->slot, type);
	else if (strcmp(plugin, "pgoutput") != 0)
		rc = err_set(e,
		             "replication slot \"%s\" was created for plugin \"%s\", not "
		             "pgoutput (use another --slot name, or drop it with SELECT "
		             "pg_drop_replication_slot('%s'))",
		             p->slot, plugin, p->slot);
	/* From 15 such a slot has pgoutput decode a transaction at its
	 * PREPARE, whatever START_REPLICATION asks, in messages of protocol
	 * version 3, and send only its outcome later (14's pgoutput has no
	 * two-phase decoding, so the flag does nothing): pgstream emits committed
	 * transactions, whole, at their commit, which a slot without it gives
	 * (a prepared transaction is decoded at its COMMIT PREPARED). */
	else if (PQgetvalue(res, 0, 9)[0] == 't')
		rc = err_set(e,
		             "replication slot \"%s\" has two_phase enabled, and pgstream does not "
		             "decode prepared transactions at PREPARE (it emits them when they "
		             "commit): use another --slot name, or drop it with SELECT "
		             "pg_drop_replication_slot('%s')",
		             p->slot, p->slot);
	else if (strcmp(db, PQgetvalue(res, 0, 6)) != 0)
		rc = err_set(e,
		             "replication slot \"%s\" belongs to database \"%s\", not \"%s\" "
		             "(slot names are per server: give each pgstream its own --slot, "
		             "e.g. --slot pgstream_%s)",
		             p->slot, db, PQgetvalue(res, 0, 6), PQgetvalue(res, 0, 6));
	else if (strcmp(status, "lost") == 0 || !PQgetisnull(res, 0, 8))
		rc = err_set(e,
		             "replication slot \"%s\" is invalidated (%s); changes were lost on "
		             "the server, drop the slot and resynchronize",
		             p->slot, invalidation_cause(PQgetvalue(res, 0, 8)));
	else if (!PQgetisnull(res, 0, 3))
		rc = err_setk(e, ERR_BUSY,
		              "replication slot \"%s\" is active in another process (pid %s)",
		              p->slot, pid);
	else if (!PQgetisnull(res, 0, 4))
		lsn_parse(PQgetvalue(res, 0, 4), &info->slot_confirmed_lsn);
	if (rc == 1)
		info->slot_failover = PQgetvalue(res, 0, 7)[0] == 't';
	PQclear(res);
	return rc;
}

/* --failover-slot on a slot made without it (by an older pgstream, or
 * copied from the snapshot's temporary slot, which cannot have it). */
static int enable_failover(PGconn *pg, const struct conn_params *p, struct err *e)
{
	char sql[256];
	PGresult *res;

	snprintf(sql, sizeof sql, "ALTER_REPLICATION_SLOT \"%s\" (FAILOVER true)", p->slot);
	res = run(pg, sql, "enable failover on the replication slot", e);
	if (res == NULL)
		return -1;
	PQclear(res);
	log_info("replication slot %s: failover enabled", p->slot);
	return 0;
}

/* A failover slot reaches a standby only through its slot sync, and is
 * safe there only if the server holds back changes the standby has not
 * received: otherwise pgstream may emit transactions that a failover to
 * that standby loses, and its synchronized slot is behind what pgstream
 * acknowledged. */
static int check_failover_setup(PGconn *pg, struct err *e)
{
	PGresult *res =
	    run(pg, "SHOW synchronized_standby_slots", "read synchronized_standby_slots", e);

	if (res == NULL)
		return -1;
	if (PQgetvalue(res, 0, 0)[0] == '\0')
		log_warn("--failover-slot: synchronized_standby_slots is empty, so pgstream may "
		         "receive changes a standby has not yet received; after a failover to it "
		         "those are gone from the database but not from pgstream's output (set "
		         "synchronized_standby_slots to the standbys' physical slots)");
	PQclear(res);
	return 0;
}

/* A temporary slot exporting its snapshot (conn.h, export_snapshot). It
 * goes with the connection: a snapshot cut short leaves no slot behind,
 * and the next start makes a new one and snapshots again. The exported
 * snapshot stays valid only until this connection's next command. */
static int create_snapshot_slot(PGconn *pg, const struct conn_params *p, struct conn_info *info,
                                struct err *e)
{
	char sql[256];
	PGresult *res;

	if (p->temporary_slot && !p->snapshot_only)
		snprintf(info->snapshot_slot, sizeof info->snapshot_slot, "%s", p->slot);
	else
		snprintf(info->snapshot_slot, sizeof info->snapshot_slot, "%.54s_snapshot",
		         p->slot);
	snprintf(sql, sizeof sql, "CREATE_REPLICATION_SLOT \"%s\" TEMPORARY LOGICAL pgoutput%s",
	         info->snapshot_slot,
	         info->server_version >= 150000 ? " (SNAPSHOT 'export')" : " EXPORT_SNAPSHOT");
	res = run(pg, sql, "create replication slot for the snapshot", e);
	if (res == NULL)
		return -1;
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 2) ||
	    !lsn_parse(PQgetvalue(res, 0, 1), &info->consistent_lsn)) {
		PQclear(res);
		return err_set(e, "could not create replication slot for the snapshot: the server "
		                  "exported no snapshot");
	}
	snprintf(info->snapshot, sizeof info->snapshot, "%s", PQgetvalue(res, 0, 2));
	info->slot_confirmed_lsn = info->consistent_lsn;
	log_info("replication slot created for the snapshot: %s (temporary), consistent point %s",
	         info->snapshot_slot, PQgetvalue(res, 0, 1));
	PQclear(res);
	return 0;
}

static int ensure_slot(PGconn *pg, const struct conn_params *p, struct conn_info *info,
                       struct err *e)
{
	char sql[256];
	PGresult *res;
	int exists = 0;

	if (p->temporary_slot && p->slot_must_exist)
		return err_set(e,
		               "temporary replication slot \"%s\" was dropped with the lost "
		               "connection: changes made meanwhile cannot be streamed (use a "
		               "permanent slot to survive reconnects)",
		               p->slot);
	if (p->snapshot_only)
		return create_snapshot_slot(pg, p, info, e);
	if (!p->temporary_slot) {
		exists = check_existing_slot(pg, p, info, e);
		if (exists < 0)
			return -1;
		if (exists) {
			log_info("using existing replication slot: %s", p->slot);
			return p->failover_slot && !info->slot_failover ? enable_failover(pg, p, e)
			                                                : 0;
		}
		/* Creating it again would start after the changes made since it
		 * vanished: a silent loss. Say so instead. */
		if (p->slot_must_exist)
			return err_set(
			    e,
			    "replication slot \"%s\" no longer exists (dropped while "
			    "pgstream was disconnected, or a failover to a server it was not "
			    "synchronized to: see --failover-slot): changes since its last "
			    "acknowledged position are lost on the server; resynchronize, "
			    "then start pgstream again to create a new slot",
			    p->slot);
	}
	if (p->export_snapshot)
		return create_snapshot_slot(pg, p, info, e);
	snprintf(sql, sizeof sql, "CREATE_REPLICATION_SLOT \"%s\" %sLOGICAL pgoutput%s%s", p->slot,
	         p->temporary_slot ? "TEMPORARY " : "",
	         info->server_version >= 150000 ? " (SNAPSHOT 'nothing'" : " NOEXPORT_SNAPSHOT",
	         info->server_version < 150000 ? ""
	         : p->failover_slot            ? ", FAILOVER true)"
	                                       : ")");
	res = run(pg, sql, "create replication slot", e);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 1)
		lsn_parse(PQgetvalue(res, 0, 1), &info->slot_confirmed_lsn);
	PQclear(res);
	log_info("replication slot created: %s%s", p->slot,
	         p->temporary_slot  ? " (temporary)"
	         : p->failover_slot ? " (failover)"
	                            : "");
	return 0;
}

/* The port of a TCP socket address, or 0. */
static unsigned port_of(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)a)->sin_port);
	if (a->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
	return 0;
}

/* Whether fd is a TCP connection to this host: to a loopback address, or
 * to one of our own (the peer is then the address we connect from). Sets
 * the two ports for server_sees_us. */
static bool same_host_tcp(int fd, unsigned *self_port, unsigned *peer_port)
{
	struct sockaddr_storage self, peer;
	socklen_t self_len = sizeof self, peer_len = sizeof peer;
	bool same = false;

	if (getsockname(fd, (struct sockaddr *)&self, &self_len) != 0 ||
	    getpeername(fd, (struct sockaddr *)&peer, &peer_len) != 0 ||
	    self.ss_family != peer.ss_family)
		return false;
	if (peer.ss_family == AF_INET) {
		const struct in_addr *a = &((const struct sockaddr_in *)&peer)->sin_addr;
		const struct in_addr *b = &((const struct sockaddr_in *)&self)->sin_addr;

		same = (ntohl(a->s_addr) >> 24) == 127 || a->s_addr == b->s_addr;
	} else if (peer.ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)&peer)->sin6_addr;
		const struct in6_addr *b = &((const struct sockaddr_in6 *)&self)->sin6_addr;

		same = IN6_IS_ADDR_LOOPBACK(a) || memcmp(a, b, sizeof *a) == 0 ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	} /* else a Unix socket */
	*self_port = port_of(&self);
	*peer_port = port_of(&peer);
	return same;
}

/* Whether the server's end of this connection is the other end of our
 * socket: it sees our port as its client's, and serves on the port we
 * connected to. A proxy on this host (PgBouncer, ssh -L, a cloud SQL
 * proxy) connects from a port of its own, to a server that may be far
 * away, on another clock, with send buffers the hold cannot count on. */
static bool server_sees_us(PGconn *pg, unsigned self_port, unsigned peer_port)
{
	PGresult *res = PQexec(pg, "SELECT inet_client_port(), inet_server_port()");
	bool same = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	            PQnfields(res) == 2 && !PQgetisnull(res, 0, 0) && !PQgetisnull(res, 0, 1) &&
	            strtoul(PQgetvalue(res, 0, 0), NULL, 10) == self_port &&
	            strtoul(PQgetvalue(res, 0, 1), NULL, 10) == peer_port;

	PQclear(res);
	return same;
}

/* The largest receive buffer setsockopt may grant; 0 if unknown. */
static long rmem_max(void)
{
	FILE *f = fopen("/proc/sys/net/core/rmem_max", "r");
	long v = 0;

	if (f == NULL)
		return 0;
	if (fscanf(f, "%ld", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

/*
 * The sink stalled: raise the buffer for the rest of the connection, so that
 * what the server sends while we do not read has room, as it has in a buffer
 * Linux sizes itself. Linux cannot hand the size back to its own tuning once
 * it was set, and caps what we ask for at net.core.rmem_max. With 4 MB, 32
 * runs of the stall test (ASan, two in parallel) all kept their connection;
 * capped at a stock Debian's 208 kB, 4 of 16 lost it - so the hold is used
 * only where rmem_max grants the whole STALL_RCVBUF. The hold ends
 * with it: shrinking the buffer again under a window already advertised
 * would drop segments inside that window. A reconnect starts afresh.
 */
#define STALL_RCVBUF (4 * 1024 * 1024)

/*
 * Set up the hold (pg/pace.c) for a server on this host over TCP: fix the
 * receive buffer at HOLD_RCVBUF (Linux doubles it for its bookkeeping) so
 * that the window closes soon after we stop reading. Left to Linux, it grows
 * to ~1 MB under load and the window never closes. The round trip here is
 * microseconds, so a small window does not limit throughput. Measured with
 * the hold (bench, CUBIC, N=400k): 64 kB 169,000-176,000 changes/s at
 * 0.52-0.54 s per million for pgstream; 128 kB 151,000 at 0.54; 256 kB
 * 151,000 at 0.72; unset 103,000 at 1.31.
 *
 * A fixed buffer must not stay small while we stop reading because the
 * sink stalls (conn_release_hold). Left small, it filled within a second,
 * and in test_faults_sink's stdout stall the server then stopped receiving
 * our status updates and ended the connection after wal_sender_timeout, in
 * 5 of 16 runs under ASan with two runs in parallel (0 of 16 without the
 * fixed buffer). The capture (README, Performance): the full buffer of small
 * segments runs out of memory inside the window it advertised, Linux drops
 * those segments, the server's sequence runs ahead of our zero window, and
 * from then on Linux drops every segment from the server as out of window -
 * with it the acknowledgements of our status updates, which our TCP then
 * resends with backoff instead of sending new ones.
 */
#define HOLD_RCVBUF (64 * 1024)

static void allow_hold(struct pg_conn *c, const struct conn_params *p)
{
	int fd = PQsocket(c->pg);
	int size = HOLD_RCVBUF;
	unsigned self_port = 0, peer_port = 0;

	if (!p->read_hold || c->pace.delay_us <= 0 || fd < 0 ||
	    !same_host_tcp(fd, &self_port, &peer_port))
		return;
	if (rmem_max() < STALL_RCVBUF) {
		log_debug("read hold not used: net.core.rmem_max is under the %d kB a stalled "
		          "output needs",
		          STALL_RCVBUF / 1024);
		return;
	}
	if (!server_sees_us(c->pg, self_port, peer_port)) {
		log_debug("read hold not used: the server does not see our port %u as its "
		          "client's (a proxy in between?)",
		          self_port);
		return;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size) != 0) {
		log_debug("read hold not used: could not set the receive buffer: %s",
		          strerror(errno));
		return;
	}
	c->pace.hold_allowed = true;
	log_debug("server on this host over TCP: receive buffer %d kB, read hold under load",
	          HOLD_RCVBUF / 1024);
}

void conn_release_hold(struct pg_conn *c)
{
	int fd, size = STALL_RCVBUF;
	socklen_t len = sizeof size;

	if (c == NULL || !c->pace.hold_allowed)
		return;
	pace_release_hold(&c->pace);
	fd = PQsocket(c->pg);
	if (fd < 0) {
		log_warn("could not raise the receive buffer while output is blocked: no socket");
		return;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, &len) != 0) {
		log_warn("could not raise the receive buffer while output is blocked: %s",
		         strerror(errno));
		return;
	}
	/* getsockopt reports twice what was granted (Linux's bookkeeping): halve
	 * it to compare with the 64 kB the hold set. */
	log_debug("output blocked: receive buffer raised to %d kB, read hold off for this "
	          "connection",
	          size / 2 / 1024);
}

/* The server must send UTF-8, or SQL_ASCII's bytes as stored (conn_connect
 * says why); note its own encoding, which decides what else needs care
 * (pg/encoding.h). */
static int check_encoding(PGconn *pg, struct conn_info *info, struct err *e)
{
	const char *client = PQparameterStatus(pg, "client_encoding");
	const char *server = PQparameterStatus(pg, "server_encoding");
	const char *want = is_sql_ascii(pg) ? "SQL_ASCII" : "UTF8";

	if (client == NULL || strcmp(client, want) != 0)
		return err_set(e, "could not set client_encoding to %s: the server reports %s",
		               want, client ? client : "none");
	snprintf(info->server_encoding, sizeof info->server_encoding, "%s",
	         server ? server : "UTF8");
	snprintf(info->dbname, sizeof info->dbname, "%s", PQdb(pg) ? PQdb(pg) : "");
	return 0;
}

struct pg_conn *conn_open(const struct conn_params *p, struct conn_info *info, struct err *e)
{
	struct pg_conn *c = calloc(1, sizeof *c);

	memset(info, 0, sizeof *info);
	conn_describe(p->database_url, info->description, sizeof info->description);
	if (c == NULL) {
		err_set(e, "could not connect: out of memory");
		return NULL;
	}
	c->pace.delay_us = p->read_delay_us;
	c->pg = conn_connect(p->database_url, true, e);
	if (c->pg == NULL)
		goto fail;
	if (PQstatus(c->pg) != CONNECTION_OK) {
		/* Whether a retry helps is for the caller to judge (it depends on
		 * whether we ever streamed); report it as transient. */
		err_setk(e, ERR_TRANSIENT, "could not connect to %s: %s", info->description,
		         PQerrorMessage(c->pg));
		goto fail;
	}
	info->server_version = PQserverVersion(c->pg);
	if (check_encoding(c->pg, info, e) < 0)
		goto fail;
	c->pace.record_reads = PQsslInUse(c->pg) || PQgssEncInUse(c->pg);
	allow_hold(c, p);
	return c;
fail:
	conn_close(c);
	return NULL;
}

/*
 * The publication (looked up, created if asked) and its tables' replica
 * identities, over an ordinary connection of its own, not the walsender's:
 * pg_publication_tables and CREATE PUBLICATION ... FOR TABLE open the
 * tables, and a table's relcache entry built there, with today's columns,
 * is what the walsender would then decode older changes with (an ALTER
 * TABLE since them: events with the wrong columns, seen on 18).
 */
static int publication_checks(const struct conn_params *p, struct err *e)
{
	PGconn *pg = conn_connect(p->database_url, false, e);
	int rc;

	if (pg == NULL)
		return -1;
	if (PQstatus(pg) != CONNECTION_OK) {
		err_setk(e, ERR_TRANSIENT, "could not connect to read the publication: %s",
		         PQerrorMessage(pg));
		PQfinish(pg);
		return -1;
	}
	rc = ensure_publication(pg, p, e) < 0 || warn_identity(pg, p, e) < 0 ? -1 : 0;
	PQfinish(pg);
	return rc;
}

int conn_prepare(struct pg_conn *c, const struct conn_params *p, struct conn_info *info,
                 struct err *e)
{
	if (check_server(c->pg, info, e) < 0)
		return -1;
	/* Refused before the slot is made, as nothing could stream from it:
	 * an older pgoutput refuses the option at START_REPLICATION, and
	 * leaving it out would stream what --origin none is to keep out. */
	if (p->origin && info->server_version < ORIGIN_SERVER_VERSION)
		return err_set(e, "could not use --origin: it needs PostgreSQL 16 or newer");
	/* Before the slot is made: one made without it would not survive a
	 * failover, which is what was asked for. */
	if (p->failover_slot && info->server_version < FAILOVER_SERVER_VERSION)
		return err_set(e,
		               "could not use --failover-slot: it needs PostgreSQL 17 or newer "
		               "(before 17 a slot exists on its server only, and a failover loses "
		               "it; see README, Upgrades, failover)");
	if (p->failover_slot && check_failover_setup(c->pg, e) < 0)
		return -1;
	if (identify_system(c->pg, info, e) < 0 || publication_checks(p, e) < 0 ||
	    ensure_slot(c->pg, p, info, e) < 0)
		return -1;
	/* Version 1 unless streaming is asked for: the server then sends large
	 * transactions before they commit (version 2, PostgreSQL 14+). */
	info->streaming = p->streaming;
	if (p->streaming && info->server_version < STREAMING_SERVER_VERSION)
		return err_set(e, "could not use --streaming: it needs PostgreSQL 14 or newer");
	info->proto_version = p->streaming ? 2 : 1;
	info->messages = info->server_version >= MESSAGES_SERVER_VERSION;
	return 0;
}

int conn_start_replication(struct pg_conn *c, const struct conn_params *p,
                           const struct conn_info *info, uint64_t start_lsn, struct err *e)
{
	char lsn[LSN_STR_MAX];
	char *ident = PQescapeIdentifier(c->pg, p->publication, strlen(p->publication));
	char *lit = ident ? PQescapeLiteral(c->pg, ident, strlen(ident)) : NULL;
	char origin[32] = ""; /* p->origin is config's "any" or "none" */
	struct buf sql;
	PGresult *res;
	int rc = 0;

	if (lit == NULL) {
		PQfreemem(ident);
		return err_set(e, "could not quote publication name \"%s\"", p->publication);
	}
	lsn_format(start_lsn, lsn);
	if (p->origin)
		snprintf(origin, sizeof origin, ", origin '%s'", p->origin);
	buf_init(&sql, 4096);
	buf_printf(&sql,
	           "START_REPLICATION SLOT \"%s\" LOGICAL %s (proto_version '%d', "
	           "publication_names %s%s%s%s)",
	           p->slot, lsn, info->proto_version, lit,
	           info->messages ? ", messages 'true'" : "",
	           info->streaming ? ", streaming 'on'" : "", origin);
	res = PQexec(c->pg, sql.data);
	if (PQresultStatus(res) != PGRES_COPY_BOTH)
		rc = conn_result_error(c->pg, res, e, "start replication");
	PQclear(res);
	buf_reset(&sql);
	PQfreemem(lit);
	PQfreemem(ident);
	return rc;
}

/*
 * How the server's bytes arrived over TCP, for the log at debug level: the
 * average segment says whether the walsender's sends coalesced (one message
 * per segment is 150-250 bytes on the reference workload, coalesced sends
 * are kilobytes). That depends on the server's TCP more than on pgstream and
 * decides much of the CPU both sides spend (README, Performance).
 */
static void log_tcp_segments(PGconn *pg)
{
	struct tcp_info ti;
	size_t need = offsetof(struct tcp_info, tcpi_data_segs_in) + sizeof ti.tcpi_data_segs_in;
	struct sockaddr_storage addr;
	socklen_t addr_len = sizeof addr;
	socklen_t len = sizeof ti;
	int fd = pg ? PQsocket(pg) : -1;

	if (log_get_level() > LOG_DEBUG)
		return; /* two system calls for a line nobody would see */
	if (fd < 0 || getsockname(fd, (struct sockaddr *)&addr, &addr_len) != 0 ||
	    (addr.ss_family != AF_INET && addr.ss_family != AF_INET6))
		return; /* not connected, or a Unix socket */
	memset(&ti, 0, sizeof ti);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 || len < need ||
	    ti.tcpi_data_segs_in == 0)
		return; /* no data came, or a kernel older than 4.6 does not count them */
	log_debug("connection received %llu bytes in %u TCP segments, %llu bytes per segment",
	          (unsigned long long)ti.tcpi_bytes_received, (unsigned)ti.tcpi_data_segs_in,
	          (unsigned long long)(ti.tcpi_bytes_received / ti.tcpi_data_segs_in));
}

void conn_close(struct pg_conn *c)
{
	if (c == NULL)
		return;
	log_tcp_segments(c->pg);
	PQfinish(c->pg);
	free(c);
}

PGconn *conn_pg(struct pg_conn *c)
{
	return c->pg;
}

struct pace *conn_pace(struct pg_conn *c)
{
	return &c->pace;
}
