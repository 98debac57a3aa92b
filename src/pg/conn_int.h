/*
 * conn_int.h — what pg/ modules share about the connection and nobody else
 * sees: the libpq handle, its read pacing policy and the error classification.
 */
#ifndef PGSTREAM_CONN_INT_H
#define PGSTREAM_CONN_INT_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "pg/conn.h"

struct pace;

PGconn *conn_pg(struct pg_conn *c);

/* The connection's read pacing policy (pg/pace.h): owned by the
 * connection, fed and followed by stream.c. Valid until conn_close. */
struct pace *conn_pace(struct pg_conn *c);

/* Connect to the user's database with pgstream's session settings, as a
 * logical walsender (replication=database) or an ordinary session. Returns
 * a PGconn to check with PQstatus, or NULL with *e set. */
PGconn *conn_connect(const char *database_url, bool replication, struct err *e);

/* Fill *e from a failed result (res may be NULL), as "could not <what>:
 * <server message>", with ERR_TRANSIENT when a reconnect may cure it.
 * Returns -1. */
int conn_result_error(PGconn *pg, PGresult *res, struct err *e, const char *what);

#endif
