/*
 * encoder_int.h — what a format implements (one fmt_*.c each), as curl's
 * vtls backends fill a struct Curl_ssl: encoder.c dispatches, the format's
 * state stays private to its file and is allocated for it (state_size).
 */
#ifndef PGSTREAM_ENCODER_INT_H
#define PGSTREAM_ENCODER_INT_H

#include <stddef.h>

#include "event/encoder.h"

struct encoder_ops {
	const char *name;
	size_t state_size; /* zeroed bytes handed to every call as state */
	void (*init)(void *state, const struct encoder_options *opt); /* may be NULL */
	void (*prepare_relation)(void *state, struct relinfo *ri);    /* may be NULL */
	void (*write)(void *state, struct buf *out, const struct event *ev);
	void (*fini)(void *state); /* may be NULL: frees what init allocated */
	/* may be NULL: the format writes one record per event, and keys as
	 * event/key.h does (encoder.h) */
	size_t (*second_record)(const void *state);
	int (*write_key)(void *state, struct buf *out, const struct event *ev, bool old);
};

extern const struct encoder_ops ENCODER_JSON;     /* fmt_json.c */
extern const struct encoder_ops ENCODER_PRETTY;   /* fmt_pretty.c */
extern const struct encoder_ops ENCODER_DEBEZIUM; /* fmt_debezium.c */

#endif
