/*
 * checkpoint.h — what may be acknowledged to the server.
 *
 * The rule: the flush LSN reported to Postgres moves to a transaction's end
 * only once the sink has confirmed every event of that transaction and of all
 * transactions before it. Sinks confirm asynchronously (a file after fsync,
 * Kafka after its delivery report), by event sequence number: "every event
 * numbered <= seq is durable". The checkpoint keeps, in commit order, each
 * finished transaction's end LSN with the sequence number of its last event,
 * and releases them as confirmations arrive.
 *
 * A keepalive received while no transaction is open is a position too: it
 * says the server has sent everything before its WAL end, so once the events
 * before it are confirmed that WAL end may be acknowledged, and an idle slot
 * stops holding WAL back.
 */
#ifndef PGSTREAM_CHECKPOINT_H
#define PGSTREAM_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct checkpoint_mark {
	uint64_t lsn; /* position that becomes acknowledgeable */
	uint64_t seq; /* once every event numbered <= seq is confirmed */
};

struct checkpoint {
	struct checkpoint_mark *ring;
	size_t cap;
	size_t head; /* oldest pending mark */
	size_t count;
	uint64_t flush_lsn; /* may be reported as flushed */
};

/* cap: how many pending marks fit before checkpoint_full(). Returns -1 on
 * allocation failure. start_lsn: the position already acknowledged. */
int checkpoint_init(struct checkpoint *cp, size_t cap, uint64_t start_lsn);
void checkpoint_reset(struct checkpoint *cp);

/*
 * Record that lsn may be acknowledged once event seq is confirmed. Marks must
 * come in non-decreasing lsn and seq order; a mark not beyond the last one is
 * merged into it. Returns false when the ring is full: the caller confirms
 * (flushes the sink) and retries.
 */
bool checkpoint_mark(struct checkpoint *cp, uint64_t lsn, uint64_t seq);
static inline bool checkpoint_full(const struct checkpoint *cp)
{
	return cp->count == cp->cap;
}

/* The sink confirmed every event numbered <= seq: release the marks it
 * covers. Returns the new flush LSN. */
uint64_t checkpoint_confirm(struct checkpoint *cp, uint64_t seq);

/* The sink dropped every event numbered > seq (they will be sent again,
 * under new numbers): drop the marks waiting for them. The marks kept wait
 * for events <= seq only, so the next mark may have any seq >= seq. */
void checkpoint_discard(struct checkpoint *cp, uint64_t seq);

#endif
