/*
 * rfc3339.h — Postgres's ISO date and time output as RFC 3339 (the json
 * and pretty formats' default, --time-format rfc3339).
 *
 * The connection fixes DateStyle=ISO and TimeZone=UTC (pg/conn.c), so a
 * timestamptz arrives as "2026-12-01 18:50:07.573885+00" and becomes
 * "2026-12-01T18:50:07.573885Z"; a timestamp "2026-12-01T18:50:07.573885";
 * a timetz "18:50:07+05:30" keeps its offset, written +HH:MM ("Z" for
 * zero); a date and a time are already RFC 3339. The fraction stays as
 * Postgres prints it (trailing zeros dropped, none for a whole second).
 * The forms RFC 3339 has no word for are documented, not invented:
 * infinity and -infinity stay Postgres's words; a BC year is written as
 * ISO 8601's astronomical year (1 BC is 0000, 44 BC is -0043); a year
 * past 9999 keeps its digits.
 */
#ifndef PGSTREAM_RFC3339_H
#define PGSTREAM_RFC3339_H

#include <stdbool.h>
#include <stddef.h>

#include "event/valtype.h"
#include "util/buf.h"

/* Append s[0..len), Postgres's text of a value of kind (VK_DATE,
 * VK_TIMESTAMP, VK_TIMESTAMPTZ or VK_TIMETZ), as a JSON string in RFC 3339.
 * False, appending nothing, if s is not in the form Postgres prints (or
 * has an offset in seconds, which RFC 3339 cannot write): the caller then
 * writes it as it is. */
bool rfc3339_write(struct buf *out, int kind, const char *s, size_t len);

#endif
