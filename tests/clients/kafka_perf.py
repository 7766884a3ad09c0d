"""Produce then consume N records of S bytes with librdkafka (confluent-kafka) and print one
JSON line: produce and consume rates (records/s) and produce latency percentiles (ms).

  python kafka_perf.py --bootstrap B --topic T --count 1000000 --size 100 --acks 1
"""

import argparse
import json
import time

from confluent_kafka import Consumer, Producer, TopicPartition


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--acks", default="1")
    parser.add_argument("--partitions", type=int, default=1)
    args = parser.parse_args()

    latencies = []

    def delivered(err, msg):
        if err is None:
            latencies.append(msg.latency())

    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": args.acks,
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 2_000_000,
        "compression.type": "none",
    })
    value = b"x" * args.size
    start = time.time()
    for _ in range(args.count):
        while True:
            try:
                producer.produce(args.topic, value, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush()
    produce_seconds = time.time() - start

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"perf-{time.time()}",
        "enable.auto.commit": False,
        "fetch.max.bytes": 52_428_800,
        "max.partition.fetch.bytes": 10_485_760,
    })
    consumer.assign([TopicPartition(args.topic, p, 0) for p in range(args.partitions)])
    consumed, start = 0, time.time()
    deadline = start + 300
    while consumed < args.count and time.time() < deadline:
        consumed += len(consumer.consume(num_messages=10000, timeout=1.0))
    consume_seconds = time.time() - start
    consumer.close()

    latencies.sort()

    def percentile(q):
        return round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2) if latencies else None

    print(json.dumps({
        "acked": len(latencies),
        "consumed": consumed,
        "produce_per_s": round(args.count / produce_seconds),
        "consume_per_s": round(consumed / consume_seconds),
        "produce_latency_ms": {"p50": percentile(0.5), "p99": percentile(0.99), "max": percentile(1.0)},
    }))


if __name__ == "__main__":
    main()
