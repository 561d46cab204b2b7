# A Kafka source that reads several topics (tests/integration/kafka_topics_test.py): the
# recruitment pipeline reads topic A alone, then A and B (kill -9 after a commit, then
# --until-caught-up), and a pattern that gains a topic mid-run; tables == the independent
# recomputation, positions per topic and partition == the end offsets kcat -Q reads, A's stored
# positions kept, dead letters name their topic. No broker or kcat: SKIP (exit 77), a FAIL when
# CI=true. Topics topics_*; ~2 min.
sluice_python_test(kafka_topics tests/integration/kafka_topics_test.py TIMEOUT 600
                   LABELS python integration kafka)
