/*
 * kafka_mock.c — a Kafka cluster for the tests: librdkafka's mock cluster
 * (rdkafka_mock.h), which speaks the real protocol on real sockets, in a
 * process of its own that fault injections are typed into.
 *
 *   kafka_mock [BROKERS]     (default 3)
 *
 * Prints the bootstrap servers on the first line of stdout, then reads one
 * command per line on stdin and answers each with "ok" or "error: ...":
 *
 *   down ID | up ID          a broker (1..BROKERS) refuses connections, or
 *                            takes them again
 *   rtt ID MS                a broker answers MS milliseconds late
 *   errors N CODE            the next N Produce requests fail with Kafka
 *                            error CODE (e.g. 6 NOT_LEADER_FOR_PARTITION)
 *   request-errors API N CODE  the same for requests of ApiKey API (e.g. 26
 *                            EndTxn, 24 AddPartitionsToTxn)
 *   create TOPIC PARTS       create a topic (replication: every broker)
 *   topic-error TOPIC CODE   requests for TOPIC fail with CODE (0 clears)
 *
 * Exits on EOF (the test closing its pipe), so a test that dies takes its
 * cluster with it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define PRODUCE_API_KEY 0 /* Kafka protocol ApiKey of Produce */

static int command(rd_kafka_mock_cluster_t *mc, int brokers, char *line)
{
	char topic[256];
	int id, n, code, api;
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;

	if (sscanf(line, "down %d", &id) == 1 && id >= 1 && id <= brokers)
		err = rd_kafka_mock_broker_set_down(mc, id);
	else if (sscanf(line, "up %d", &id) == 1 && id >= 1 && id <= brokers)
		err = rd_kafka_mock_broker_set_up(mc, id);
	else if (sscanf(line, "rtt %d %d", &id, &n) == 2 && id >= 1 && id <= brokers && n >= 0)
		err = rd_kafka_mock_broker_set_rtt(mc, id, n);
	else if ((sscanf(line, "errors %d %d", &n, &code) == 2 && (api = PRODUCE_API_KEY, 1)) ||
	         sscanf(line, "request-errors %d %d %d", &api, &n, &code) == 3) {
		rd_kafka_resp_err_t *codes;

		if (n <= 0 || n > 100000 || api < 0 || api > 100)
			return -1;
		if ((codes = malloc(sizeof *codes * (size_t)n)) == NULL)
			return -1;
		for (int i = 0; i < n; i++)
			codes[i] = (rd_kafka_resp_err_t)code;
		rd_kafka_mock_push_request_errors_array(mc, (int16_t)api, (size_t)n, codes);
		free(codes);
	} else if (sscanf(line, "create %255s %d", topic, &n) == 2 && n > 0)
		err = rd_kafka_mock_topic_create(mc, topic, n, brokers);
	else if (sscanf(line, "topic-error %255s %d", topic, &code) == 2)
		rd_kafka_mock_topic_set_error(mc, topic, (rd_kafka_resp_err_t)code);
	else
		return -1;
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		printf("error: %s\n", rd_kafka_err2str(err));
		return 0;
	}
	printf("ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	int brokers = argc > 1 ? atoi(argv[1]) : 3;
	char errstr[512], line[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_mock_cluster_t *mc;
	rd_kafka_t *rk;

	if (brokers < 1 || brokers > 16) {
		fprintf(stderr, "kafka_mock: BROKERS must be 1 to 16\n");
		return 2;
	}
	/* The cluster lives in a client handle's threads; this one sends
	 * nothing itself. */
	rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr); /* not "no brokers" */
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
	if (rk == NULL) {
		fprintf(stderr, "kafka_mock: %s\n", errstr);
		return 1;
	}
	mc = rd_kafka_mock_cluster_new(rk, brokers);
	if (mc == NULL) {
		fprintf(stderr, "kafka_mock: could not start the mock cluster\n");
		rd_kafka_destroy(rk);
		return 1;
	}
	printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
	fflush(stdout);
	while (fgets(line, sizeof line, stdin)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0')
			continue;
		if (command(mc, brokers, line) < 0)
			printf("error: unknown command \"%s\"\n", line);
		fflush(stdout);
	}
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return 0;
}
