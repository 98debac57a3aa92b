/*
 * valtype.c — built-in type OIDs → JSON rendering rules (see valtype.h).
 *
 * OIDs are PostgreSQL's fixed catalog OIDs from pg_type.dat; they never
 * change between major versions. Anything not listed (domains, enums,
 * composite and user-defined types) renders as a string until the daemon's
 * catalog lookup refines it.
 */
#include "event/valtype.h"

#include <stddef.h>

/* A scalar's delim is the delimiter used when it is an array element
 * (pg_type.typdelim): ',' for every built-in type except box. */
/* clang-format off */
#define SCALAR(oid, k) {oid, {k, VK_STRING, ','}}
#define ARRAY(oid, k)  {oid, {VK_ARRAY, k, ','}}
/* clang-format on */
#define TEXTARRAY(oid) ARRAY(oid, VK_STRING)

static const struct {
	uint32_t oid;
	struct valtype vt;
} BUILTIN[] = {
    /* scalars with a non-string rendering */
    SCALAR(16, VK_BOOL),                /* bool */
    SCALAR(20, VK_NUMBER),              /* int8 */
    SCALAR(21, VK_NUMBER),              /* int2 */
    SCALAR(23, VK_NUMBER),              /* int4 */
    SCALAR(26, VK_NUMBER),              /* oid */
    SCALAR(700, VK_NUMBER),             /* float4 */
    SCALAR(701, VK_NUMBER),             /* float8 */
    SCALAR(1700, VK_DECIMAL),           /* numeric */
    SCALAR(114, VK_JSON),               /* json */
    SCALAR(3802, VK_JSON),              /* jsonb */
    {603, {VK_STRING, VK_STRING, ';'}}, /* box: "(1,1),(0,0)" holds commas */
    SCALAR(1082, VK_DATE),              /* date */
    SCALAR(1114, VK_TIMESTAMP),         /* timestamp */
    SCALAR(1184, VK_TIMESTAMPTZ),       /* timestamptz */
    SCALAR(1266, VK_TIMETZ),            /* timetz */

    /* arrays of typed elements */
    ARRAY(1000, VK_BOOL),               /* _bool */
    ARRAY(1005, VK_NUMBER),             /* _int2 */
    ARRAY(1007, VK_NUMBER),             /* _int4 */
    ARRAY(1016, VK_NUMBER),             /* _int8 */
    ARRAY(1028, VK_NUMBER),             /* _oid */
    ARRAY(1021, VK_NUMBER),             /* _float4 */
    ARRAY(1022, VK_NUMBER),             /* _float8 */
    ARRAY(1231, VK_DECIMAL),            /* _numeric */
    ARRAY(199, VK_JSON),                /* _json */
    ARRAY(3807, VK_JSON),               /* _jsonb */
    {1020, {VK_ARRAY, VK_STRING, ';'}}, /* _box */
    ARRAY(1182, VK_DATE),               /* _date */
    ARRAY(1115, VK_TIMESTAMP),          /* _timestamp */
    ARRAY(1185, VK_TIMESTAMPTZ),        /* _timestamptz */
    ARRAY(1270, VK_TIMETZ),             /* _timetz */

    /* arrays whose elements render as strings */
    TEXTARRAY(143),  /* _xml */
    TEXTARRAY(271),  /* _xid8 */
    TEXTARRAY(629),  /* _line */
    TEXTARRAY(651),  /* _cidr */
    TEXTARRAY(719),  /* _circle */
    TEXTARRAY(775),  /* _macaddr8 */
    TEXTARRAY(791),  /* _money */
    TEXTARRAY(1001), /* _bytea */
    TEXTARRAY(1002), /* _char */
    TEXTARRAY(1003), /* _name */
    TEXTARRAY(1006), /* _int2vector */
    TEXTARRAY(1008), /* _regproc */
    TEXTARRAY(1009), /* _text */
    TEXTARRAY(1010), /* _tid */
    TEXTARRAY(1011), /* _xid */
    TEXTARRAY(1012), /* _cid */
    TEXTARRAY(1013), /* _oidvector */
    TEXTARRAY(1014), /* _bpchar */
    TEXTARRAY(1015), /* _varchar */
    TEXTARRAY(1017), /* _point */
    TEXTARRAY(1018), /* _lseg */
    TEXTARRAY(1019), /* _path */
    TEXTARRAY(1027), /* _polygon */
    TEXTARRAY(1034), /* _aclitem */
    TEXTARRAY(1040), /* _macaddr */
    TEXTARRAY(1041), /* _inet */
    TEXTARRAY(1183), /* _time */
    TEXTARRAY(1187), /* _interval */
    TEXTARRAY(1263), /* _cstring */
    TEXTARRAY(1561), /* _bit */
    TEXTARRAY(1563), /* _varbit */
    TEXTARRAY(2201), /* _refcursor */
    TEXTARRAY(2207), /* _regprocedure */
    TEXTARRAY(2208), /* _regoper */
    TEXTARRAY(2209), /* _regoperator */
    TEXTARRAY(2210), /* _regclass */
    TEXTARRAY(2211), /* _regtype */
    TEXTARRAY(2287), /* _record */
    TEXTARRAY(2949), /* _txid_snapshot */
    TEXTARRAY(2951), /* _uuid */
    TEXTARRAY(3221), /* _pg_lsn */
    TEXTARRAY(3643), /* _tsvector */
    TEXTARRAY(3644), /* _gtsvector */
    TEXTARRAY(3645), /* _tsquery */
    TEXTARRAY(3735), /* _regconfig */
    TEXTARRAY(3770), /* _regdictionary */
    TEXTARRAY(3905), /* _int4range */
    TEXTARRAY(3907), /* _numrange */
    TEXTARRAY(3909), /* _tsrange */
    TEXTARRAY(3911), /* _tstzrange */
    TEXTARRAY(3913), /* _daterange */
    TEXTARRAY(3927), /* _int8range */
    TEXTARRAY(4073), /* _jsonpath */
    TEXTARRAY(4090), /* _regnamespace */
    TEXTARRAY(4097), /* _regrole */
    TEXTARRAY(4192), /* _regcollation */
    TEXTARRAY(5039), /* _pg_snapshot */
    TEXTARRAY(6150), /* _int4multirange */
    TEXTARRAY(6151), /* _nummultirange */
    TEXTARRAY(6152), /* _tsmultirange */
    TEXTARRAY(6153), /* _tstzmultirange */
    TEXTARRAY(6155), /* _datemultirange */
    TEXTARRAY(6157), /* _int8multirange */
};

/* A linear scan is enough: this runs once per column per Relation message,
 * never per value. */
struct valtype valtype_for_oid(uint32_t oid)
{
	struct valtype text = {VK_STRING, VK_STRING, ','};

	for (size_t i = 0; i < sizeof BUILTIN / sizeof BUILTIN[0]; i++)
		if (BUILTIN[i].oid == oid)
			return BUILTIN[i].vt;
	return text;
}

/* Postgres has no arrays of arrays (an array of a domain over an array prints
 * its elements as quoted literals), so a nested array element is a string. */
struct valtype valtype_array_of(struct valtype elem)
{
	struct valtype vt = {VK_ARRAY, elem.kind, elem.delim};

	if (elem.kind == VK_ARRAY)
		vt.elem = VK_STRING;
	return vt;
}

struct valtype valtype_for_base(uint32_t base, bool array)
{
	struct valtype inner = valtype_for_oid(base);

	if (!array)
		return inner;
	/* An array of a type that is itself an array (a domain over int[], say)
	 * prints its elements as quoted literals: one string. */
	if (inner.kind == VK_ARRAY)
		return valtype_for_oid(0);
	return valtype_array_of(inner);
}

static uint8_t adjust(uint8_t kind, bool pg_times, bool numeric_strings)
{
	if (pg_times && kind >= VK_DATE && kind <= VK_TIMETZ)
		return VK_STRING;
	if (numeric_strings && kind == VK_DECIMAL)
		return VK_STRING;
	return kind;
}

struct valtype valtype_adjust(struct valtype vt, bool pg_times, bool numeric_strings)
{
	vt.kind = adjust(vt.kind, pg_times, numeric_strings);
	vt.elem = adjust(vt.elem, pg_times, numeric_strings);
	return vt;
}
