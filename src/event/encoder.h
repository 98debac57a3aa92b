/*
 * encoder.h — events → bytes, in one of pgstream's output formats.
 *
 * "json" is the JSONL contract (one object per line, README "Event
 * format"); "pretty" is the seed's view for people. An encoder is made for
 * one format by name, so choosing a format is the encoder's business: the
 * configuration only passes the name along. Each format keeps what it
 * derives per relation in the relation's encoder slot (event/relinfo.h) and
 * what it derives per transaction in its own state. Writing allocates
 * nothing beyond the buf's growth.
 */
#ifndef PGSTREAM_ENCODER_H
#define PGSTREAM_ENCODER_H

#include <stdbool.h>

#include "event/event.h"
#include "event/relinfo.h"
#include "util/buf.h"

/* The formats, as the help text lists them. */
#define ENCODER_FORMATS "json|pretty"

struct encoder;

/* Whether name is a format. */
bool encoder_known(const char *name);

/* An encoder for format name; NULL if it is not one (see encoder_known) or
 * out of memory. */
struct encoder *encoder_new(const char *name);
void encoder_free(struct encoder *enc); /* accepts NULL */

/* The format's name, as given to encoder_new. */
const char *encoder_name(const struct encoder *enc);

/* A Relation message for ri arrived (after relmap_update): let the format
 * derive once what its events need (renderings, escaped names). Optional:
 * events of a relation without it are written the same, more slowly. */
void encoder_prepare_relation(struct encoder *enc, struct relinfo *ri);

/* Append ev to out: a line ending in '\n' (json) or a block (pretty). */
void encoder_write(struct encoder *enc, struct buf *out, const struct event *ev);

#endif
