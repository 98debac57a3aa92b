/*
 * valtype.h — how a column's text value becomes a JSON value.
 *
 * pgoutput sends every value as Postgres's text output; the type OID from the
 * Relation message says how to render it. The rule table (see json.h):
 * bool → true/false; integers, oid, floats, numeric → JSON numbers from their
 * exact digits (NaN/Infinity as strings); json/jsonb → embedded; arrays →
 * JSON arrays of their element kind; everything else → string.
 */
#ifndef PGSTREAM_VALTYPE_H
#define PGSTREAM_VALTYPE_H

#include <stdbool.h>
#include <stdint.h>

enum valkind {
	VK_STRING = 0, /* JSON string of the text output */
	VK_BOOL,       /* "t"/"f" → true/false */
	VK_NUMBER,     /* digits as a JSON number; non-finite words as strings */
	VK_JSON,       /* json/jsonb text embedded as is */
	VK_ARRAY,      /* Postgres array literal → (nested) JSON array of elem */
	VK_DECIMAL,    /* numeric: as VK_NUMBER, or a string under --numeric string */
	/* Dates and times: RFC 3339 strings (event/rfc3339.h), or Postgres's
	 * text as VK_STRING under --time-format postgres (valtype_with_times). */
	VK_DATE,
	VK_TIMESTAMP,
	VK_TIMESTAMPTZ,
	VK_TIMETZ,
};

struct valtype {
	uint8_t kind; /* enum valkind */
	uint8_t elem; /* enum valkind of the elements when kind == VK_ARRAY */
	char delim;   /* array element delimiter: ',' (';' for box) */
};

/* The rendering of a built-in type OID (array types included); VK_STRING
 * for OIDs it does not know, such as user-defined types and domains. */
struct valtype valtype_for_oid(uint32_t oid);

/* The rendering of an array whose element type renders as elem. */
struct valtype valtype_array_of(struct valtype elem);

/* The rendering of a column whose values look like those of built-in type
 * base (a domain over it), or, with array, like an array of them (an array
 * of such a domain): see event/relinfo.h's struct coltype. */
struct valtype valtype_for_base(uint32_t base, bool array);

/* vt as the options want it, its elements' kind too: date and time kinds
 * made VK_STRING when pg_times (--time-format postgres: as Postgres prints
 * them), VK_DECIMAL made VK_STRING when numeric_strings (--numeric string). */
struct valtype valtype_adjust(struct valtype vt, bool pg_times, bool numeric_strings);

#endif
