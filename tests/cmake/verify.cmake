# `sluice verify` against corruption made by hand (tests/integration/verify_test.py): the
# recruitment pipeline into SQLite and into MariaDB/MySQL (a value edited, a row deleted, a row
# added, a checkpoint applied twice, the job dimension changed since; SQLite also the input
# rewritten), an append-mode pipeline into Parquet (a part file deleted, one duplicated), and a
# Kafka topic that grew after the run (read only up to the committed offsets; an edited value).
# No server (MySQL, Kafka), seed data or pyarrow (Parquet): SKIP (exit 77), a FAIL when CI=true.
foreach(backend sqlite mysql parquet kafka)
  sluice_python_test(verify_${backend} tests/integration/verify_test.py VENV TIMEOUT 300
                     ARGS --backend ${backend} LABELS python integration verify ${backend})
endforeach()
