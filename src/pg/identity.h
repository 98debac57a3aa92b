/*
 * identity.h — which tables of a publication have no replica identity.
 *
 * The server refuses an UPDATE or DELETE of a table that a publication
 * publishing them contains unless the table has a replica identity (a
 * primary key under REPLICA IDENTITY DEFAULT, FULL, or USING INDEX with the
 * index there): the application's own writes fail, not pgstream. So every
 * start names such tables, and --create-publication refuses to make a
 * publication that contains any unless --allow-no-replica-identity.
 */
#ifndef PGSTREAM_IDENTITY_H
#define PGSTREAM_IDENTITY_H

#include <libpq-fe.h>

#include "util/buf.h"
#include "util/err.h"

/* The remedy, for the messages that name such tables. */
#define IDENTITY_REMEDY                                                                            \
	"add a primary key, or ALTER TABLE ... REPLICA IDENTITY FULL, or REPLICA IDENTITY "        \
	"USING INDEX on a unique index of NOT NULL columns"

/*
 * Append to *names "s.t (why), ..." for the tables of `publication` without
 * a replica identity, at most a screenful then "and N more"; set *count to
 * how many there are (0 also when the publication publishes neither
 * UPDATE nor DELETE, or does not exist). Runs one simple-protocol query,
 * so it works on a replication=database connection and inside the
 * caller's transaction. -1 with *e set if the server refused.
 */
int identity_missing(PGconn *pg, const char *publication, struct buf *names, int *count,
                     struct err *e);

#endif
