/* event.c — the change model; see event.h. */
#include "event/event.h"

const char *event_op_name(enum event_op op)
{
	switch (op) {
	case EVENT_INSERT:
		return "insert";
	case EVENT_UPDATE:
		return "update";
	case EVENT_DELETE:
		return "delete";
	case EVENT_TRUNCATE:
		return "truncate";
	case EVENT_MESSAGE:
		return "message";
	case EVENT_READ:
		return "read";
	case EVENT_BEGIN:
		return "begin";
	case EVENT_COMMIT:
		return "commit";
	}
	return "unknown";
}
