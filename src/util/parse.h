/*
 * parse.h — the textual values settings are written in (booleans, seconds,
 * whole numbers), parsed one way whoever declares the setting: the core's
 * option table (config.c) and the sinks' own options (sink.c).
 */
#ifndef PGSTREAM_PARSE_H
#define PGSTREAM_PARSE_H

#include <stdbool.h>

/* The largest count a setting takes; a narrower range is its owner's
 * check. */
#define PARSE_MAX_COUNT 1000000000

/* 1/true/yes/on or 0/false/no/off, any case. */
bool parse_bool(const char *s, bool *out);

/* Seconds, integer or decimal, 0 < s <= 86400, stored as milliseconds. */
bool parse_seconds(const char *s, int *out_ms);

/* A whole number 0 <= n <= max, digits only. */
bool parse_whole(const char *s, long max, int *out);

#endif
