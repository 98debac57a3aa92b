/*
 * status.h — the `pgstream status` and `pgstream drop-slot` commands: what
 * the server holds for this pgstream's settings, for a person or (--json)
 * for a script, and the clean-up of a slot left behind.
 */
#ifndef PGSTREAM_STATUS_H
#define PGSTREAM_STATUS_H

#include <stdio.h>

#include "config.h"
#include "util/err.h"

/* Print the slot's and the publication's state to out: one screen, or
 * one JSON object with cfg->json. -1 with *e set when the server cannot
 * be asked. */
int status_print(const struct config *cfg, FILE *out, struct err *e);

/* Drop cfg->slot after a confirmation read from in when in is a terminal
 * (or at once with cfg->yes). Returns 0 dropped, 1 declined, -1 with *e
 * set: no such slot, in use, not confirmable (not a terminal, no --yes;
 * kind ERR_FATAL), or refused by the server. */
int status_drop_slot(const struct config *cfg, FILE *in, FILE *out, struct err *e);

#endif
