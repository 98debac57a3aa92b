/*
 * pgoutput.h — pure decoder of the pgoutput logical replication protocol.
 *
 * Bytes in, messages out, no I/O and no libpq: one call decodes the payload
 * of one XLogData ('w') frame. The specification is the PostgreSQL chapter
 * "Logical Replication Message Formats". Protocol version 1 messages are
 * B C O R Y I U D T M; v2 adds a leading xid to R Y I U D T M inside streamed
 * transactions and S E c A; v3 adds b P K r p (two-phase).
 *
 * Ownership: tuple values, strings and the truncate OID list in a decoded
 * message BORROW from the input bytes or from the decoder's scratch space,
 * and are valid until the next pgoutput_decode() call or until the input is
 * freed, whichever is first. Relations are owned by the decoder's relcache.
 */
#ifndef PGSTREAM_PGOUTPUT_H
#define PGSTREAM_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pg/relcache.h"
#include "util/err.h"

/* Message types: the values are the wire bytes. */
enum pgo_type {
	PGO_BEGIN = 'B',
	PGO_COMMIT = 'C',
	PGO_ORIGIN = 'O',
	PGO_RELATION = 'R',
	PGO_TYPE = 'Y',
	PGO_INSERT = 'I',
	PGO_UPDATE = 'U',
	PGO_DELETE = 'D',
	PGO_TRUNCATE = 'T',
	PGO_MESSAGE = 'M',
	PGO_STREAM_START = 'S',
	PGO_STREAM_STOP = 'E',
	PGO_STREAM_COMMIT = 'c',
	PGO_STREAM_ABORT = 'A',
	PGO_BEGIN_PREPARE = 'b',
	PGO_PREPARE = 'P',
	PGO_COMMIT_PREPARED = 'K',
	PGO_ROLLBACK_PREPARED = 'r',
	PGO_STREAM_PREPARE = 'p',
};

/* Tuple column kinds: the values are the wire bytes. */
enum pgo_colkind {
	PGO_COL_NULL = 'n',
	PGO_COL_UNCHANGED_TOAST = 'u',
	PGO_COL_TEXT = 't',
	PGO_COL_BINARY = 'b',
};

struct pgo_value {
	char kind;        /* enum pgo_colkind */
	uint32_t len;     /* bytes in data; 0 for 'n' and 'u' */
	const char *data; /* NOT NUL-terminated; borrowed */
};

struct pgo_tuple {
	uint16_t ncols;
	const struct pgo_value *cols; /* borrowed from decoder scratch */
};

/* Truncate option bits (wire values). */
#define PGO_TRUNCATE_CASCADE          0x01
#define PGO_TRUNCATE_RESTART_IDENTITY 0x02
/* Message flag bit (wire value). */
#define PGO_MESSAGE_TRANSACTIONAL 0x01

struct pgo_msg {
	enum pgo_type type;
	/* v2+: xid of the streamed transaction a change belongs to, 0 if none. */
	uint32_t stream_xid;
	union {
		struct {
			uint64_t final_lsn; /* LSN of the commit record */
			int64_t commit_time;
			uint32_t xid;
		} begin;
		struct {
			uint8_t flags;
			uint64_t commit_lsn;
			uint64_t end_lsn;
			int64_t commit_time;
		} commit;
		struct {
			uint64_t commit_lsn;
			const char *name;
		} origin;
		struct {
			const struct relation *rel; /* already stored in the relcache */
		} relation;
		struct {
			uint32_t oid;
			const char *nspname;
			const char *typname;
		} type;
		/* INSERT, UPDATE, DELETE */
		struct {
			const struct relation *rel;
			char old_kind; /* 'K' key, 'O' whole old row, 0 none (UPDATE/DELETE) */
			struct pgo_tuple oldtup;
			struct pgo_tuple newtup; /* INSERT, UPDATE */
		} change;
		struct {
			uint8_t options; /* PGO_TRUNCATE_* bits */
			uint32_t nrels;
			const uint32_t *relids; /* borrowed from decoder scratch */
		} truncate;
		struct {
			uint8_t flags; /* PGO_MESSAGE_TRANSACTIONAL */
			uint64_t lsn;
			const char *prefix;
			uint32_t len;
			const uint8_t *content;
		} message;
		struct {
			uint32_t xid;
			uint8_t first_segment;
		} stream_start;
		struct {
			uint32_t xid;
			uint8_t flags;
			uint64_t commit_lsn;
			uint64_t end_lsn;
			int64_t commit_time;
		} stream_commit;
		struct {
			uint32_t xid;
			uint32_t subxid;
			/* v4 with streaming = parallel only; 0 when not sent. */
			uint64_t abort_lsn;
			int64_t abort_time;
		} stream_abort;
		struct {
			uint8_t flags;        /* 0; BEGIN PREPARE has no flags byte */
			uint64_t prepare_lsn; /* LSN of the PREPARE record */
			uint64_t end_lsn;     /* end LSN of the prepared transaction */
			int64_t prepare_time;
			uint32_t xid;
			const char *gid;
		} prepare; /* BEGIN PREPARE, PREPARE, STREAM PREPARE */
		struct {
			uint8_t flags; /* 0 */
			uint64_t commit_lsn;
			uint64_t end_lsn;
			int64_t commit_time;
			uint32_t xid;
			const char *gid;
		} commit_prepared;
		struct {
			uint8_t flags;            /* 0 */
			uint64_t prepare_end_lsn; /* end LSN of the prepared transaction */
			uint64_t rollback_end_lsn;
			int64_t prepare_time;
			int64_t rollback_time;
			uint32_t xid;
			const char *gid;
		} rollback_prepared;
	} u;
};

struct pgo_decoder;

/* proto_version (1..4) selects which messages are accepted and which carry
 * a leading xid (v2+ inside a stream). The decoder owns a relcache (see
 * pgoutput_relcache()). Returns NULL on allocation failure or when
 * proto_version is out of range. */
struct pgo_decoder *pgoutput_new(int proto_version);
void pgoutput_free(struct pgo_decoder *d); /* accepts NULL */
struct relcache *pgoutput_relcache(struct pgo_decoder *d);

/*
 * Decode one message from data[0..len). On success fills *out and returns 0.
 * On truncated, malformed or unknown input returns -1 with a one-line
 * description in *e ("could not decode <what>: <why> at offset N"); never
 * reads past len. Trailing bytes after a complete message are an error.
 * *out is unspecified after a failure, and a failure leaves the decoder's
 * state (relcache, stream state) as it was. An empty namespace on the wire
 * means pg_catalog and is reported as "pg_catalog".
 */
int pgoutput_decode(struct pgo_decoder *d, const uint8_t *data, size_t len, struct pgo_msg *out,
                    struct err *e);

/* The message's name as the documentation spells it ("INSERT", "STREAM
 * START", ...); "UNKNOWN" for a byte that is not a message type. Static. */
const char *pgoutput_type_name(enum pgo_type type);

/*
 * Streamed transactions (v2+). Between STREAM START and STREAM STOP the
 * caller does not decode messages but spools them (they belong to a
 * transaction that may still abort), and replays them at STREAM COMMIT
 * through pgoutput_decode_spooled(), which reads them as stream members.
 * Relation messages take effect at replay, as in PostgreSQL's own apply.
 */
bool pgoutput_in_stream(const struct pgo_decoder *d);

/* The (sub)transaction xid that follows the type byte of a message sent
 * inside a stream. Returns -1 with *e set for a message that cannot appear
 * there or is truncated. */
int pgoutput_peek_stream_xid(const uint8_t *data, size_t len, uint32_t *xid, struct err *e);

int pgoutput_decode_spooled(struct pgo_decoder *d, const uint8_t *data, size_t len,
                            struct pgo_msg *out, struct err *e);

#endif
