# The short soak (tests/integration/soak_test.py; `make soak SOAK_MINUTES=60` is the long one):
# the recruitment pipeline Kafka -> MariaDB, two sluice processes in one consumer group, while a
# driver kills -9 them, restarts the broker and MariaDB, fills and frees the sink's disk (a tmpfs:
# root only, else left out) and publishes bursts with poison records, for 1.5 minutes of faults;
# then `events` == the independent recomputation and every poison record is in
# `_sluice_dead_letters` with its reason. It starts its own MariaDB and Kafka
# (scripts/services.sh on free loopback ports, data under build/soak/), never the shared servers
# of `make services`, and stops them at the end. ~4 min on 2 busy cores (a first run copies the
# Kafka jars, ~20 s more). mariadbd, java or kcat missing: SKIP (exit 77), a FAIL when CI=true.
# InnoDB may stop itself on the full disk ("[FATAL] InnoDB: Error (Out of disk space) in
# rollback"); the driver then frees the disk and starts its MariaDB again (crash recovery),
# counted as a database restart, before the faults go on (RELIABILITY.md).
sluice_python_test(soak tests/integration/soak_test.py SERIAL TIMEOUT 900
                   ARGS --minutes 1.5 --workdir ${CMAKE_BINARY_DIR}/soak
                   LABELS python integration kafka mysql soak)
