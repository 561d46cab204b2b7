"""Cassandra for the tests: a session on the node harness.CASSANDRA discovers (127.0.0.1:9042
of `make services`, or SLUICE_TEST_CASSANDRA), through the Python cassandra-driver of the
project venv (run the test with .venv/bin/python)."""
from harness import CASSANDRA, Missing


def session(timeout=60):
    """(cluster, session); raises harness.Missing when the driver or the node is missing."""
    try:
        from cassandra.cluster import Cluster  # noqa: PLC0415
    except ImportError as e:
        raise Missing(f"the Python cassandra-driver is missing ({e}); run scripts/venv.sh and "
                      "use .venv/bin/python") from e
    try:
        cluster = Cluster([CASSANDRA.host], port=CASSANDRA.port, protocol_version=4,
                          connect_timeout=10)
        s = cluster.connect()
    except Exception as e:  # the driver raises NoHostAvailable and friends
        raise Missing(f"Cassandra does not answer on {CASSANDRA.address} ({e}); start it with "
                      "`make services` or scripts/services.sh up cassandra") from e
    s.default_timeout = timeout
    return cluster, s
