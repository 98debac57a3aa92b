/*
 * nats_tool.c — a test tool for the NATS sink's tests, on libnats:
 *
 *   nats_tool URL read STREAM     every message of the stream, read back
 *       through an ephemeral pull consumer, one JSON line each:
 *       {"seq":1,"subject":"p.public.t","id":"0/16B3F20:1","data":{...the event...}}
 *       ("data" is the message as stored: pgstream's event, itself JSON),
 *       up to the stream's last sequence as its info said at start;
 *   nats_tool URL info STREAM     {"messages":N,"first_seq":N,"last_seq":N,
 *       "replicas":N,"duplicate_window_s":N,"subjects":[...],"leader":"..."};
 *   nats_tool URL follow STREAM   each message stored in the stream from now
 *       on, its data on a line of its own as it is delivered (JetStream
 *       delivers a message once the stream has stored it), until killed;
 *   nats_tool URL publish SUBJECT DATA   one JetStream publish, acknowledged;
 *   nats_tool URL add-stream STREAM SUBJECT   a stream of one subject filter.
 *
 * Exit 1 with one line on stderr on any failure.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <nats/nats.h>

static int die(const char *what, natsStatus s)
{
	const char *why = nats_GetLastError(NULL);

	fprintf(stderr, "nats_tool: %s: %s\n", what, why && *why ? why : natsStatus_GetText(s));
	return 1;
}

static void put_string(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void put_header(natsMsg *m, const char *name, const char *field)
{
	const char *v = NULL;

	if (natsMsgHeader_Get(m, name, &v) == NATS_OK) {
		printf(",\"%s\":", field);
		put_string(v);
	}
}

static int info(jsCtx *js, const char *stream)
{
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s;

	if ((s = js_GetStreamInfo(&si, js, stream, NULL, &jerr)) != NATS_OK)
		return die("stream info", s);
	printf("{\"messages\":%" PRIu64 ",\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64
	       ",\"replicas\":%" PRId64 ",\"duplicate_window_s\":%.3f,\"subjects\":[",
	       si->State.Msgs, si->State.FirstSeq, si->State.LastSeq, si->Config->Replicas,
	       (double)si->Config->Duplicates / 1e9);
	for (int i = 0; i < si->Config->SubjectsLen; i++) {
		if (i)
			putchar(',');
		put_string(si->Config->Subjects[i]);
	}
	printf("],\"leader\":");
	put_string(si->Cluster && si->Cluster->Leader ? si->Cluster->Leader : "");
	printf("}\n");
	jsStreamInfo_Destroy(si);
	return 0;
}

static int publish(jsCtx *js, const char *subject, const char *data)
{
	jsPubAck *pa = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_Publish(&pa, js, subject, data, (int)strlen(data), NULL, &jerr);

	if (s != NATS_OK)
		return die("publish", s);
	jsPubAck_Destroy(pa);
	return 0;
}

static int add_stream(jsCtx *js, const char *stream, const char *subject)
{
	jsStreamConfig sc;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	const char *subjects[1] = {subject};
	natsStatus s;

	jsStreamConfig_Init(&sc);
	sc.Name = stream;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	if ((s = js_AddStream(&si, js, &sc, NULL, &jerr)) != NATS_OK)
		return die("add stream", s);
	jsStreamInfo_Destroy(si);
	return 0;
}

static int read_all(jsCtx *js, const char *stream)
{
	jsStreamInfo *si = NULL;
	natsSubscription *sub = NULL;
	jsSubOptions so;
	jsErrCode jerr = 0;
	natsStatus s;
	uint64_t last, want, got = 0;

	if ((s = js_GetStreamInfo(&si, js, stream, NULL, &jerr)) != NATS_OK)
		return die("stream info", s);
	last = si->State.LastSeq;
	want = si->State.Msgs;
	jsStreamInfo_Destroy(si);
	if (want == 0)
		return 0;
	jsSubOptions_Init(&so);
	so.Stream = stream;
	so.Config.AckPolicy = js_AckNone;
	so.Config.DeliverPolicy = js_DeliverAll;
	if ((s = js_PullSubscribe(&sub, js, ">", NULL, NULL, &so, &jerr)) != NATS_OK)
		return die("pull subscribe", s);
	while (got < want) {
		natsMsgList list = {0};

		s = natsSubscription_Fetch(&list, sub, 1024, 5000, &jerr);
		if (s != NATS_OK)
			return die("fetch", s);
		for (int i = 0; i < list.Count; i++) {
			natsMsg *m = list.Msgs[i];
			jsMsgMetaData *md = NULL;
			uint64_t seq = 0;

			if (natsMsg_GetMetaData(&md, m) == NATS_OK) {
				seq = md->Sequence.Stream;
				jsMsgMetaData_Destroy(md);
			}
			printf("{\"seq\":%" PRIu64 ",\"subject\":", seq);
			put_string(natsMsg_GetSubject(m));
			put_header(m, "Nats-Msg-Id", "id");
			printf(",\"data\":%.*s}\n", natsMsg_GetDataLength(m), natsMsg_GetData(m));
			got = seq >= last ? want : got + 1;
		}
		natsMsgList_Destroy(&list);
	}
	natsSubscription_Unsubscribe(sub);
	natsSubscription_Destroy(sub);
	return 0;
}

static int follow(jsCtx *js, const char *stream)
{
	natsSubscription *sub = NULL;
	jsSubOptions so;
	jsErrCode jerr = 0;
	natsStatus s;

	jsSubOptions_Init(&so);
	so.Stream = stream;
	so.Config.AckPolicy = js_AckNone;
	so.Config.DeliverPolicy = js_DeliverNew;
	if ((s = js_SubscribeSync(&sub, js, ">", NULL, &so, &jerr)) != NATS_OK)
		return die("subscribe", s);
	printf("following\n");
	fflush(stdout);
	for (;;) {
		natsMsg *m = NULL;

		s = natsSubscription_NextMsg(&m, sub, 60000);
		if (s == NATS_TIMEOUT)
			continue;
		if (s != NATS_OK)
			return die("next message", s);
		printf("%.*s\n", natsMsg_GetDataLength(m), natsMsg_GetData(m));
		fflush(stdout);
		natsMsg_Destroy(m);
	}
}

int main(int argc, char **argv)
{
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	natsStatus s;
	int rc;

	if (argc < 4 ||
	    ((strcmp(argv[2], "publish") == 0 || strcmp(argv[2], "add-stream") == 0) && argc < 5)) {
		fprintf(stderr,
		        "usage: nats_tool URL read|info|follow STREAM | publish SUBJECT DATA | "
		        "add-stream STREAM SUBJECT\n");
		return 2;
	}
	if ((s = natsConnection_ConnectTo(&nc, argv[1])) != NATS_OK)
		return die("connect", s);
	if ((s = natsConnection_JetStream(&js, nc, NULL)) != NATS_OK)
		return die("jetstream", s);
	if (strcmp(argv[2], "read") == 0)
		rc = read_all(js, argv[3]);
	else if (strcmp(argv[2], "follow") == 0)
		rc = follow(js, argv[3]);
	else if (strcmp(argv[2], "info") == 0)
		rc = info(js, argv[3]);
	else if (strcmp(argv[2], "publish") == 0)
		rc = publish(js, argv[3], argv[4]);
	else if (strcmp(argv[2], "add-stream") == 0)
		rc = add_stream(js, argv[3], argv[4]);
	else
		rc = 2;
	fflush(stdout);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return rc;
}
