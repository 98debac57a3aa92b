/*
 * nats_reply.h — what the NATS sink reads by hand, kept pure so that it can
 * be tested against the server's own bytes: a JetStream stream's answer to
 * a publish, and whether a stream's subject filter takes a prefix.
 */
#ifndef PGSTREAM_NATS_REPLY_H
#define PGSTREAM_NATS_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum nats_reply_kind {
	NATS_REPLY_ACK,   /* stored: {"stream":"T", "seq":1} */
	NATS_REPLY_ERROR, /* refused: {"error":{"code":400,"err_code":10071,...}} */
	NATS_REPLY_OTHER, /* neither: not an answer to a publish */
};

struct nats_reply {
	enum nats_reply_kind kind;
	uint64_t seq;          /* ACK: the message's stream sequence */
	bool duplicate;        /* ACK: the stream had its Nats-Msg-Id already */
	int err_code;          /* ERROR: JetStream's err_code (10071...), 0 if none */
	char description[256]; /* ERROR: the server's words, unescaped as far as ASCII */
};

/* Read the body of a publish's reply (JSON, as nats-server writes it:
 * "duplicate": true has a space, "seq" follows ", "). Never fails: what it
 * cannot read is NATS_REPLY_OTHER. */
void nats_reply_parse(const char *data, size_t len, struct nats_reply *r);

/* Whether the subject filter f (">", "a.>", "a.*.>") takes every subject
 * prefix.X... */
bool nats_subject_covers(const char *f, const char *prefix);

#endif
