"""kafka-python driven by twinmq's end-to-end tests; every command prints one JSON line.

  produce   --bootstrap B --topic T --count N [--compression C] [--acks A] [--idempotent 0|1]
            [--progress N]
  consume   --bootstrap B --topic T --expect N
  group     --bootstrap B --topic T --group G   (two members split, one leaves, restart resumes)
  create    --bootstrap B --topic T --partitions P [--replication-factor R]
  committed --bootstrap B --topic T --group G   (the group's committed offsets)
  isr       --bootstrap B --topic T   (each partition's ISR size)
"""

import argparse
import json
import sys
import threading
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

KEYS = 97


def key_of(i):
    return f"key-{i % KEYS}"


def create(args):
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    admin.create_topics([NewTopic(args.topic, args.partitions, args.replication_factor)])
    admin.close()
    return {"created": args.topic}


def produce(args):
    options = {"bootstrap_servers": args.bootstrap, "linger_ms": 5}
    if args.compression != "none":
        options["compression_type"] = args.compression
    if args.idempotent is not None:
        options["enable_idempotence"] = bool(args.idempotent)
    if args.acks is not None:
        options["acks"] = args.acks if args.acks == "all" else int(args.acks)
    producer = KafkaProducer(**options)
    acked = [0]
    lock = threading.Lock()

    def on_ack(_metadata):
        with lock:
            acked[0] += 1
            if args.progress and acked[0] % args.progress == 0:
                print(json.dumps({"progress": acked[0]}), flush=True)

    futures = []
    for i in range(args.count):
        future = producer.send(args.topic, key=key_of(i).encode(), value=f"{key_of(i)}|{i}".encode())
        future.add_callback(on_ack)
        futures.append(future)
    producer.flush()
    acked = sum(1 for f in futures if f.succeeded())
    producer.close()
    return {"sent": args.count, "acked": acked}


def check(records):
    """Per partition: offsets strictly increase, each key stays in one partition, and each key's
    sequence numbers increase (records of one key keep their send order)."""
    partition_of_key, last_offset, last_seq = {}, {}, {}
    ordered, keys_stay = True, True
    for partition, offset, key, value in records:
        if partition_of_key.setdefault(key, partition) != partition:
            keys_stay = False
        if offset <= last_offset.get(partition, -1):
            ordered = False
        last_offset[partition] = offset
        seq = int(value.split("|")[1])
        if seq <= last_seq.get(key, -1):
            ordered = False
        last_seq[key] = seq
    return ordered, keys_stay


def consume(args):
    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(args.topic, p) for p in consumer.partitions_for_topic(args.topic)]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    records, deadline = [], time.time() + 120
    while len(records) < args.expect and time.time() < deadline:
        for tp, batch in consumer.poll(timeout_ms=500).items():
            for r in batch:
                records.append((tp.partition, r.offset, r.key.decode(), r.value.decode()))
    consumer.close()
    ordered, keys_stay = check(records)
    per_partition = {}
    for partition, _, _, _ in records:
        per_partition[partition] = per_partition.get(partition, 0) + 1
    distinct = len({int(v.split("|")[1]) for _, _, _, v in records})
    return {
        "consumed": len(records),
        "distinct": distinct,
        "ordered": ordered,
        "keys_stay_in_partition": keys_stay,
        "partitions": len(per_partition),
    }


class Member(threading.Thread):
    """A group member polling in its own thread, as an application would run it.

    Only this thread touches its consumer (kafka-python's consumer is not thread-safe); the test
    reads what it publishes after every poll and asks it to stop through `stop`. Nothing here
    holds a lock across a poll, so the test's own thread is never starved of one.
    """

    def __init__(self, args):
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(
            args.topic,
            bootstrap_servers=args.bootstrap,
            group_id=args.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=10000,
            heartbeat_interval_ms=500,
            max_poll_records=50,
        )
        self.assigned = []
        self.consumed = 0
        self.limit = 0
        self.stop_request = None
        self.positions = None
        self.start()

    def run(self):
        while self.stop_request is None:
            if self.consumed >= self.limit:
                # Join and heartbeat, but take no more records: pause what is assigned.
                self.consumer.pause(*self.consumer.assignment())
            else:
                self.consumer.resume(*self.consumer.paused())
            for batch in self.consumer.poll(timeout_ms=100).values():
                self.consumed += len(batch)
            self.assigned = sorted(tp.partition for tp in self.consumer.assignment())
        positions = {tp.partition: self.consumer.position(tp) for tp in self.consumer.assignment()}
        if self.stop_request["commit"]:
            self.consumer.commit()
        self.consumer.close()
        self.positions = positions

    def stop(self, commit=False):
        """Stops polling (committing the positions first if asked), leaves the group, and
        returns the positions it stopped at."""
        self.stop_request = {"commit": commit}
        self.join()
        return self.positions


def wait_for(done, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if done():
            return True
        time.sleep(0.1)
    return False


def group(args):
    """Two members split six partitions, one leaves and the other takes all, the other commits
    and leaves, a third resumes at the commit. Each step's outcome and time go into the
    answer; it stops at the first step that fails, so the test says which one."""
    out = {}
    began = time.time()

    def step(name, ok):
        out[name] = ok
        out[name + "_at_s"] = round(time.time() - began, 1)
        return ok

    every = list(range(6))
    first, second = Member(args), Member(args)
    split = wait_for(
        lambda: first.assigned and second.assigned and sorted(first.assigned + second.assigned) == every
    )
    out["first"], out["second"] = first.assigned, second.assigned
    if not step("split", split):
        return out
    second.stop()
    if not step("taken_over", wait_for(lambda: first.assigned == every)):
        out["first_after_leave"] = first.assigned
        return out
    # Consume some records, commit exactly where the consumer is, leave.
    first.limit = 300
    step("consumed", wait_for(lambda: first.consumed >= first.limit))
    committed = first.stop(commit=True)
    out["consumed_before_commit"] = first.consumed
    if not step("committed_all", sorted(committed) == every):
        out["committed_partitions"] = sorted(committed)
        return out
    # A new member resumes exactly at the committed offsets: the first record of each partition.
    probe = KafkaConsumer(bootstrap_servers=args.bootstrap)
    ends = probe.end_offsets([TopicPartition(args.topic, p) for p in every])
    probe.close()
    waiting_for = [p for p in every if committed[p] < ends[TopicPartition(args.topic, p)]]
    third = KafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    firsts = {}
    deadline = time.time() + 60
    while len(firsts) < len(waiting_for) and time.time() < deadline:
        for tp, batch in third.poll(timeout_ms=200).items():
            if batch:
                firsts.setdefault(tp.partition, batch[0].offset)
    third.close()
    step("resumed_at_commit", all(firsts[p] == committed[p] for p in firsts))
    out["resumed_partitions"] = len(firsts)
    out["partitions_with_records_left"] = len(waiting_for)
    return out


def isr(args):
    """Each partition's in-sync replica count, as the cluster's metadata says."""
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    described = admin.describe_topics([args.topic])
    admin.close()
    partitions = described[0]["partitions"]
    return {"isr": {str(p["partition_index"]): len(p["isr_nodes"]) for p in partitions}}


def committed(args):
    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, group_id=args.group, enable_auto_commit=False)
    partitions = sorted(consumer.partitions_for_topic(args.topic))
    offsets = {str(p): consumer.committed(TopicPartition(args.topic, p)) for p in partitions}
    consumer.close()
    return {"committed": offsets}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--replication-factor", type=int, default=1)
    parser.add_argument("--compression", default="none")
    parser.add_argument("--acks", default=None)
    parser.add_argument("--idempotent", type=int, default=None)
    parser.add_argument("--group", default="g")
    parser.add_argument("--progress", type=int, default=0, help="print a line every N acks")
    args = parser.parse_args()
    commands = {
        "produce": produce,
        "consume": consume,
        "group": group,
        "create": create,
        "committed": committed,
        "isr": isr,
    }
    print(json.dumps(commands[args.command](args)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
