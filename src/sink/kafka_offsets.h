/*
 * kafka_offsets.h — where --kafka-exactly-once keeps its position: a
 * checkpoint record in a Kafka topic of its own ({prefix}.pgstream.offsets,
 * compacted), written in the same Kafka transaction as the events it counts,
 * so the position and the data commit together or not at all.
 *
 * A position is the last event a transaction holds, placed the way the
 * server sends it every time: its transaction's commit LSN (a
 * non-transactional logical message: its own LSN, a transaction of one) and
 * its number within that transaction. The server only ever sends whole
 * transactions again, from their start, so after a restart every event at
 * or before the committed position is one a committed Kafka transaction
 * already holds.
 *
 * The record: key the transactional.id, value one JSON object,
 *   {"slot":"app_slot","commit_lsn":"0/16B3F20","index":3,"lsn":"0/16B3E08",
 *    "kafka_txn":"18c2f3a4b5c6-17"}
 * (lsn: the event's own, for people; kafka_txn: the transaction's label,
 * also in the kafka_txn header of every message it wrote).
 */
#ifndef PGSTREAM_KAFKA_OFFSETS_H
#define PGSTREAM_KAFKA_OFFSETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "util/buf.h"
#include "util/err.h"

struct kafka_pos {
	uint64_t txn;   /* commit LSN of the event's transaction (see above); 0: none */
	uint64_t index; /* the event's number within it, from 1 */
	uint64_t lsn;   /* the event's own LSN: informational, not compared */
};

/* <0, 0, >0 as a is before, at, after b in the stream. */
static inline int kafka_pos_cmp(const struct kafka_pos *a, const struct kafka_pos *b)
{
	if (a->txn != b->txn)
		return a->txn < b->txn ? -1 : 1;
	if (a->index != b->index)
		return a->index < b->index ? -1 : 1;
	return 0;
}

/* "event 3 of the transaction committed at 0/16B3F20" (or "none yet"). */
void kafka_pos_describe(const struct kafka_pos *p, char *out, size_t n);

/* The checkpoint record's value for p. */
void kafka_offsets_format(struct buf *out, const char *slot, const struct kafka_pos *p,
                          const char *kafka_txn);

/* A value kafka_offsets_format wrote, back into *p; false if it is not one. */
bool kafka_offsets_parse(const char *value, size_t len, struct kafka_pos *p);

/*
 * Make sure topic exists: nothing if the cluster has it; else create it,
 * one partition, cleanup.policy=compact, the brokers' replication factor.
 * 1 created, 0 there already, -1 with *e set if it could not be created
 * (brokers without CreateTopics, no rights): the caller decides.
 */
int kafka_offsets_create(rd_kafka_t *rk, const char *topic, int timeout_ms, struct err *e);

/*
 * The newest checkpoint under key in topic, read with
 * isolation.level=read_committed from the beginning of each partition to
 * its end: *found false if there is none (or no topic). conf: a consumer's
 * configuration (brokers and the user's properties), consumed. Fails (-1,
 * *e set) rather than guess when the topic cannot be read to its end within
 * timeout_ms, or a record under key is not a checkpoint.
 */
int kafka_offsets_read(rd_kafka_conf_t *conf, const char *topic, const char *key, int timeout_ms,
                       struct kafka_pos *out, bool *found, struct err *e);

#endif
