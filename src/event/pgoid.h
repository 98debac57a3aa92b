/*
 * pgoid.h — the built-in type OIDs the debezium format converts and
 * describes (pg_type.dat; fixed across major versions), shared by its value
 * rules (fmt_debezium.c) and its schemas (dbz_schema.c).
 */
#ifndef PGSTREAM_PGOID_H
#define PGSTREAM_PGOID_H

#include <stdint.h>

#include "event/relinfo.h"

enum {
	OID_BOOL = 16,
	OID_BYTEA = 17,
	OID_NAME = 19,
	OID_INT8 = 20,
	OID_INT2 = 21,
	OID_INT4 = 23,
	OID_TEXT = 25,
	OID_OID = 26,
	OID_JSON = 114,
	OID_FLOAT4 = 700,
	OID_FLOAT8 = 701,
	OID_BOOLARR = 1000,
	OID_INT2ARR = 1005,
	OID_INT4ARR = 1007,
	OID_TEXTARR = 1009,
	OID_BPCHARARR = 1014,
	OID_VARCHARARR = 1015,
	OID_INT8ARR = 1016,
	OID_FLOAT4ARR = 1021,
	OID_FLOAT8ARR = 1022,
	OID_BPCHAR = 1042,
	OID_VARCHAR = 1043,
	OID_DATE = 1082,
	OID_TIME = 1083,
	OID_TIMESTAMP = 1114,
	OID_TIMESTAMPTZ = 1184,
	OID_INTERVAL = 1186,
	OID_TIMETZ = 1266,
	OID_NUMERIC = 1700,
	OID_UUID = 2950,
	OID_UUIDARR = 2951,
	OID_JSONB = 3802,
	OID_BIT = 1560,
	OID_VARBIT = 1562,
	OID_JSONARR = 199,
	OID_BYTEAARR = 1001,
	OID_TIMESTAMPARR = 1115,
	OID_DATEARR = 1182,
	OID_TIMEARR = 1183,
	OID_TIMESTAMPTZARR = 1185,
	OID_TIMETZARR = 1270,
	OID_JSONBARR = 3807,
	OID_POINT = 600,
	OID_MONEY = 790,
	OID_XML = 142,
	OID_OIDARR = 1028,
	OID_NUMERICARR = 1231,
	OID_POINTARR = 1017,
	OID_TSVECTOR = 3614,
	OID_LINE = 628,
	OID_LSEG = 601,
	OID_PATH = 602,
	OID_BOX = 603,
	OID_POLYGON = 604,
	OID_CIRCLE = 718,
};

/* Not a catalog OID: the debezium format's name for a column of hstore[]
 * (relinfo.h's {COLTYPE_HSTORE, true}), whose elements it converts. */
#define OID_HSTOREARR (UINT32_MAX - 1)

/* The type column i of ri's values are converted by: a domain's base type,
 * hstore or hstore[] (relinfo.h), else the column's own. */
static inline uint32_t pgoid_of_column(const struct relinfo *ri, uint16_t i)
{
	const struct coltype *t = ri->types ? &ri->types[i] : NULL;

	if (t && t->base == COLTYPE_HSTORE)
		return t->array ? OID_HSTOREARR : COLTYPE_HSTORE;
	return t && !t->array && t->base ? t->base : ri->remote->cols[i].typoid;
}

/* A numeric column's declared scale and precision from its typmod,
 * VARHDRSZ + (precision << 16 | scale): the scale is the low 11 bits read
 * as signed, since PostgreSQL 15 allows numeric(5,-2) and scales up to
 * 1000 (earlier releases allow 0 to precision, which reads the same). */
static inline int pgoid_numeric_scale(int32_t typmod)
{
	return (((typmod - 4) & 0x7ff) ^ 0x400) - 0x400;
}

static inline int pgoid_numeric_precision(int32_t typmod)
{
	return ((typmod - 4) >> 16) & 0xffff;
}

/* The element type of an array type whose values the debezium format
 * writes as a JSON array of converted (or coinciding) elements, the schema
 * its items have; 0 for others. */
static inline uint32_t pgoid_array_elem(uint32_t oid)
{
	switch (oid) {
	case OID_BOOLARR:
		return OID_BOOL;
	case OID_INT2ARR:
		return OID_INT2;
	case OID_INT4ARR:
		return OID_INT4;
	case OID_INT8ARR:
		return OID_INT8;
	case OID_OIDARR:
		return OID_OID;
	case OID_FLOAT4ARR:
		return OID_FLOAT4;
	case OID_FLOAT8ARR:
		return OID_FLOAT8;
	case OID_NUMERICARR:
		return OID_NUMERIC;
	case OID_HSTOREARR:
		return COLTYPE_HSTORE;
	case OID_UUIDARR:
		return OID_UUID;
	case OID_JSONARR:
		return OID_JSON;
	case OID_JSONBARR:
		return OID_JSONB;
	case OID_BYTEAARR:
		return OID_BYTEA;
	case OID_DATEARR:
		return OID_DATE;
	case OID_TIMEARR:
		return OID_TIME;
	case OID_TIMETZARR:
		return OID_TIMETZ;
	case OID_TIMESTAMPARR:
		return OID_TIMESTAMP;
	case OID_TIMESTAMPTZARR:
		return OID_TIMESTAMPTZ;
	}
	return 0;
}

#endif
