# A Kafka source never creates its topic (tests/integration/kafka_missing_topic_test.py): on a
# broker with auto.create.topics.enable, a typo in the topic under --until-caught-up (and
# `sluice verify`) exits 1 with `topic "X" does not exist on BROKER (did you mean "Y"?)` and the
# topic still does not exist (kcat -L of all topics); a plain run started before its topic
# exists warns, then reads the records produced once it is created; a pattern matching no topic
# under --until-caught-up exits 1. No broker or kcat: SKIP (exit 77), a FAIL when CI=true.
# Topics ktopic_*; ~1 min.
sluice_python_test(kafka_missing_topic tests/integration/kafka_missing_topic_test.py TIMEOUT 300
                   LABELS python integration kafka)
