/*
 * lsn.h — WAL positions (XLogRecPtr) and PostgreSQL timestamps.
 *
 * An LSN prints as Postgres does: two hex halves "X/X", upper case, no padding.
 * Timestamps on the wire are microseconds since 2000-01-01 00:00:00 UTC.
 */
#ifndef PGSTREAM_LSN_H
#define PGSTREAM_LSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LSN_STR_MAX        20                       /* "FFFFFFFF/FFFFFFFF" + NUL */
#define PG_EPOCH_OFFSET_US INT64_C(946684800000000) /* 2000-01-01 - 1970-01-01 */

/* Write lsn as "X/X" into out (LSN_STR_MAX bytes); returns the length. */
int lsn_format(uint64_t lsn, char *out);
/* Parse "X/X"; false on anything else (empty halves, junk, overflow). */
bool lsn_parse(const char *s, uint64_t *out);

/* Current time as a Postgres wire timestamp. */
int64_t pgtime_now(void);
/* Format a Postgres timestamp as ISO-8601 UTC with microseconds:
 * "2026-11-24T14:30:00.123456Z" (out needs 32 bytes); returns the length. */
int pgtime_format(int64_t pg_us, char *out);

/* Monotonic milliseconds, for timers; microseconds, for rates. */
int64_t clock_ms(void);
int64_t clock_us(void);

#endif
