"""moto server that applies one request at a time.

moto's DynamoDB mutates items without locking, so concurrent requests lose updates (198 of 200
concurrent ADDs) and concurrent conditional puts can both win: DynamoDB itself applies each
request atomically. Holding one lock around every request restores that atomicity, so tests of
concurrent redelivery check weir, not moto's races. Connections stay concurrent (threaded
server, keep-alive works); only the handling of requests is serialised.

moto also backs up every table a TransactWriteItems touches by deep-copying the whole table, so
each transaction costs time and memory in proportion to the table (a soak of 100,000 records
spent minutes per batch and gigabytes in those copies). `journal_transactions` keeps the same
all-or-nothing semantics by saving only the items the transaction names and putting them back
on a rollback. moto's checks, conditions and errors are unchanged.

moto's SQS counts a queue's messages (a pass over all of them) whenever it reads any queue
attribute: on every SendMessage (for ContentBasedDeduplication) and three times for every
message a ReceiveMessage returns (for MessageRetentionPeriod), so draining a dead-letter queue
of 10,000 messages took minutes. `uncounted_sqs_reads` reads those attributes without the counts,
and gives moto's SQS the clock from `time.time()` (moto builds two datetimes per message per
look; the same instant, a hundred times slower).

    python moto_serial.py HOST PORT
"""

import copy
import os
import sys
import threading
import time

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def journal_transactions() -> None:
    """TransactWriteItems rolls back the items it names instead of whole-table copies."""
    import moto.dynamodb.models as models

    real = models.DynamoDBBackend.transact_write_items
    journaling = threading.local()

    class TableCopy:
        """The module's `copy`: a table is not copied while a journaled transaction runs (the
        rollback then puts the same table back, and the journal restores its items)."""

        @staticmethod
        def deepcopy(value, memo=None):
            if getattr(journaling, "on", False) and isinstance(value, models.Table):
                return value
            return copy.deepcopy(value, memo)

    def transact_write_items(self, transact_items):
        journal = []
        for entry in transact_items:
            if not isinstance(entry, dict) or len(entry) != 1:
                continue  # moto refuses it below, before anything is written
            op_type, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            if table is None:
                continue
            try:
                key = op["Key"] if op_type != "Put" else {
                    a: op["Item"][a] for a in (table.hash_key_attr, table.range_key_attr) if a
                }
                hash_value, range_value = self.get_keys_value(table, key)
            except Exception:
                continue  # moto refuses it below, before anything is written
            item = table.get_item(hash_value, range_value)
            journal.append((table, hash_value, range_value, copy.deepcopy(item)))
        journaling.on = True
        try:
            return real(self, transact_items)
        except BaseException:
            for table, hash_value, range_value, item in reversed(journal):
                if table.range_key_attr:
                    if item is None:
                        table.items.get(hash_value, {}).pop(range_value, None)
                    else:
                        table.items[hash_value][range_value] = item
                elif item is None:
                    table.items.pop(hash_value, None)
                else:
                    table.items[hash_value] = item
            raise
        finally:
            journaling.on = False

    models.copy = TableCopy
    models.DynamoDBBackend.transact_write_items = transact_write_items


def uncounted_sqs_reads() -> None:
    """SendMessage and the retention check read queue attributes without counting messages."""
    import moto.sqs.models as sqs

    counts = {
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesDelayed",
        "ApproximateNumberOfMessagesNotVisible",
    }
    uncounted = threading.local()
    real_attributes = sqs.Queue.attributes.fget

    def attributes(self):
        if not getattr(uncounted, "on", False):
            return real_attributes(self)
        # moto's own computation, over every attribute but the three counts (the requests
        # below never read those), shadowing the class's list on this queue for one call.
        self.BASE_ATTRIBUTES = [a for a in type(self).BASE_ATTRIBUTES if a not in counts]
        try:
            return real_attributes(self)
        finally:
            del self.BASE_ATTRIBUTES

    def uncounting(real):
        def call(*args, **kwargs):
            outer = getattr(uncounted, "on", False)
            uncounted.on = True
            try:
                return real(*args, **kwargs)
            finally:
                uncounted.on = outer

        return call

    def now(real, scale):
        return lambda dt=None: time.time() * scale if dt is None else real(dt)

    sqs.unix_time = now(sqs.unix_time, 1.0)
    sqs.unix_time_millis = now(sqs.unix_time_millis, 1000.0)
    sqs.Queue.attributes = property(attributes)
    backend = sqs.SQSBackend
    backend.send_message = uncounting(backend.send_message)
    backend.is_message_valid_based_on_retention_period = uncounting(
        backend.is_message_valid_based_on_retention_period
    )


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    journal_transactions()
    uncounted_sqs_reads()
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serial(environ, start_response):
        with lock:
            # Consume the response inside the lock: the request is done when it is sent.
            return list(app(environ, start_response))

    run_simple(host, port, serial, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
